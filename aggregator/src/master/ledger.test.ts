import { describe, expect, it } from 'vitest';
import { parseStoredAck } from './ledger.ts';

describe('a stored acknowledgement, replayed', () => {
  const ack = { taskId: 't', round: 2, clientId: 'c_1', seq: 1, numExamples: 20, bodySha256: 'ab' };

  it('is sent as it was stored', () => {
    expect(parseStoredAck(JSON.stringify({ ...ack, acceptedAt: '2026-12-02T14:03:05.123Z' }))).toEqual({ ...ack, acceptedAt: '2026-12-02T14:03:05.123Z' });
  });

  it('carries an ISO time when it was stored with ms (before every time of the API was ISO 8601)', () => {
    expect(parseStoredAck(JSON.stringify({ ...ack, acceptedAt: Date.UTC(2026, 11, 2, 14, 3, 5, 123) }))).toEqual({
      ...ack,
      acceptedAt: '2026-12-02T14:03:05.123Z',
    });
  });
});
