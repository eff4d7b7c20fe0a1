/** @module What the wrangler-driven benchmarks read of the local runtime's memory (Linux /proc). */
import { readdirSync, readFileSync } from 'node:fs';

/**
 * RSS and anonymous RSS (heap, not cached file pages) of the workerd processes in wrangler's
 * process group `pgid` (not other aggregators running on the machine).
 */
export function workerdRss(pgid: number): { rss: number; anon: number } {
  const total = { rss: 0, anon: 0 };
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('workerd')) continue;
      // /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces, so split after ')'
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgid) continue;
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      total.rss += Number(status.match(/VmRSS:\s+(\d+) kB/)?.[1] ?? 0) * 1024;
      total.anon += Number(status.match(/RssAnon:\s+(\d+) kB/)?.[1] ?? 0) * 1024;
    } catch {
      /* process ended */
    }
  }
  return total;
}
