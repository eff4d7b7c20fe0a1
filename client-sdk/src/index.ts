/**
 * @module fedge client SDK: take part in federated training from a browser, Node or React Native
 * app. Raw training data stays on the device; only model updates are sent.
 */

export { type CreateTaskOptions, FedgeAdmin, type FedgeAdminOptions } from './admin.ts';
export type { EnrollmentKey, IdentityProvider, LiveRound, PrivacyOptions, SecureAggregationOptions, Task, TaskSummary } from './admin-types.ts';
export {
  type Assignment,
  FedgeClient,
  type FedgeClientOptions,
  type ModelWeights,
  type ParticipateOptions,
  type ParticipationResult,
  type SubmitArgs,
  type TaskModel,
} from './client.ts';
export type { EnrolledCredentials, EnrollOptions } from './enroll.ts';
export * from './errors.ts';
export type { Logger } from './internal/http.ts';
export { localEpsilon, privatizeUpdate, type UpdatePrivacy } from './privacy.ts';
export { CLIENT_ERROR_CODES, type ClientErrorCode, ERROR_STATUS, type ErrorBody, type ErrorCode, type FedgeErrorCode } from './protocol/codes.ts';
export { clipToNorm, l2Norm } from './protocol/dp.ts';
export type { UpdateEncoding } from './protocol/encoding.ts';
export type {
  CheckInResponse,
  ClientPrivacy,
  ClientSecAgg,
  ModelManifest,
  TensorManifestEntry,
  TrainingPlan,
  UpdateAck,
  VersionPrivacy,
} from './protocol/messages.ts';
export { sampledGaussianEpsilon } from './protocol/rdp.ts';
export type { SecureRoundReport } from './secure-aggregation.ts';
export {
  buildModel,
  evaluateLocally,
  flatWeights,
  setFlatWeights,
  type TrainingCallbacks,
  type TrainingData,
  type TrainingProgress,
  type TrainResult,
  trainLocally,
} from './training.ts';
