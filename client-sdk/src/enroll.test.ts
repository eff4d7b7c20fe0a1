/**
 * Enrollment through the SDK against the real aggregator (wrangler dev): the operator makes a
 * publishable key, a device enrolls with it, trains a round; the operator waits for the version
 * and downloads it in both formats. Bad keys and options fail with their codes.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { argmaxData, argmaxTask } from '../../test/sim/synthetic.ts';
import { useWasmBackend } from '../../test/sim/tf-backend.ts';
import { AuthenticationError, FedgeAdmin, FedgeClient, FedgeError } from './index.ts';
import { decodeTensors } from './protocol/safetensors.ts';

const url = inject('fedgeUrl');
const admin = new FedgeAdmin({ baseUrl: url, token: inject('fedgeAdminToken') });

const newTask = () => argmaxTask(admin, 'sdk enrollment');

beforeAll(() => useWasmBackend());

describe('FedgeClient.enroll with an enrollment key', () => {
  it('enrolls, trains a round; the operator waits for the version and downloads it as safetensors and tfjs', async () => {
    const taskId = await newTask();
    const key = await admin.createEnrollmentKey(taskId, { label: 'sdk test app', maxClients: 10 });
    expect(key.key).toMatch(/^ek_/);
    const { client, credentials } = await FedgeClient.enroll({ baseUrl: url, taskId, enrollmentKey: key.key, label: 'device A' });
    expect(credentials).toMatchObject({ taskId, clientId: expect.stringMatching(/^c_/), created: true, expiresAt: null });
    expect(client.taskId).toBe(taskId);

    const { xs, ys } = argmaxData(32, 4);
    const result = await client.participate({ xs, ys });
    tf.dispose([xs, ys]);
    expect(result.status).toBe('accepted');

    const v1 = await admin.waitForVersion(taskId, 1, { timeoutMs: 30_000, pollMs: 50 });
    expect(v1).toMatchObject({ version: 1, participants: 1 });
    const safetensors = await admin.downloadVersion(taskId, 1, 'safetensors');
    const [blobName] = Object.keys(safetensors.files);
    expect(blobName).toBe(`${taskId}-v1.safetensors`);
    const decoded = decodeTensors(safetensors.files[blobName!]!);
    expect(decoded.tensors.map((t) => t.name)).toEqual(['hidden/kernel', 'hidden/bias', 'out/kernel', 'out/bias']);
    const tfjsFiles = (await admin.downloadVersion(taskId, 1, 'tfjs')).files;
    const modelJson = JSON.parse(new TextDecoder().decode(tfjsFiles['model.json']));
    expect(modelJson.weightsManifest[0].paths).toEqual(['weights.bin']);
    expect(tfjsFiles['weights.bin']!.byteLength).toBe((4 * 8 + 8 + 8 * 3 + 3) * 4);
    // The tfjs weights are the safetensors values, in the same order.
    const flat = new Float32Array(decoded.tensors.reduce((n, t) => n + t.data.length, 0));
    let at = 0;
    for (const t of decoded.tensors) {
      flat.set(t.data, at);
      at += t.data.length;
    }
    expect(Buffer.from(tfjsFiles['weights.bin']!).equals(Buffer.from(flat.buffer))).toBe(true);

    const listed = await admin.listEnrollmentKeys(taskId);
    expect(listed).toEqual([expect.objectContaining({ id: key.id, enrolled: 1, status: 'active' })]);
    expect(listed[0]!.key).toBeUndefined();
  }, 60_000);

  it('fails with coded errors: a bad key, a revoked key, missing options, a version that never comes', async () => {
    const taskId = await newTask();
    const key = await admin.createEnrollmentKey(taskId);
    const bad = await FedgeClient.enroll({ baseUrl: url, taskId, enrollmentKey: `${key.id}.wrong` }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(AuthenticationError);
    expect(bad).toMatchObject({ status: 401, code: 'enrollment_key_invalid' });
    await admin.revokeEnrollmentKey(taskId, key.id);
    await expect(FedgeClient.enroll({ baseUrl: url, taskId, enrollmentKey: key.key })).rejects.toMatchObject({ code: 'enrollment_key_revoked' });
    await expect(FedgeClient.enroll({ baseUrl: url, taskId } as never)).rejects.toMatchObject({ name: 'FedgeError', code: 'invalid_options' });
    const waited = await admin.waitForVersion(taskId, 1, { timeoutMs: 200, pollMs: 50 }).catch((e: unknown) => e);
    expect(waited).toBeInstanceOf(FedgeError);
    expect(waited).toMatchObject({ code: 'timeout', message: expect.stringMatching(/did not publish version 1 in time \(current: 0\)/) });
  });
});
