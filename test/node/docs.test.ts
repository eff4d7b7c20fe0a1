/** The README's reference tables against the code they describe. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_STATUS } from '#protocol/codes.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('lists every error code with its status, and no code the API does not send', () => {
    // Cells may be padded (the formatter aligns tables), so find the header by its words.
    const header = /^\|\s*code\s*\|\s*status\s*\|\s*meaning\s*\|/m.exec(readme);
    expect(header, 'README has an error table').not.toBeNull();
    const lines = readme.slice(header!.index).split('\n');
    const end = lines.findIndex((l) => !l.startsWith('|')); // the table ends at its first non-row line
    const rows = lines.slice(2, end === -1 ? undefined : end).filter((l) => l.startsWith('| `'));
    const listed = new Map<string, number>();
    for (const row of rows) {
      const [codes, status] = row.split('|').slice(1, 3);
      for (const code of codes!.match(/`([a-z_]+)`/g) ?? []) listed.set(code.slice(1, -1), Number(status));
    }
    expect(Object.fromEntries([...listed].sort())).toEqual(Object.fromEntries(Object.entries(ERROR_STATUS).sort()));
  });
});
