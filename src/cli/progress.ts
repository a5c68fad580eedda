/** A progress bar for long CLI work, shown on a terminal only (`CliIo.progress`). */
import type { CliIo } from './command.js';

const WIDTH = 30;

/** `[#########.....................]  12/40 label` */
export function progressBar(done: number, total: number, label: string): string {
  const filled = total <= 0 ? WIDTH : Math.min(WIDTH, Math.floor((done * WIDTH) / total));
  return `[${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${String(done).padStart(String(total).length)}/${total} ${label}`;
}

/** Reports `done` of `total` (nothing without a terminal); `clear` ends the line. */
export function progressOf(io: CliIo, total: number, label: string): { step: (done: number) => void; clear: () => void } {
  return {
    step: (done) => io.progress?.(progressBar(done, total, label)),
    clear: () => io.progress?.(''),
  };
}
