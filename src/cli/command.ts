/** What a `tollgate` command is and what it may touch (its output, the environment, the API process). */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: Record<string, string | undefined>;
  /** Rewrites one progress line in place (stderr, on a terminal only); absent: no progress is shown. */
  progress?: (text: string) => void;
  /** Starts the API process over `env`; resolves once it listens (it then runs until a signal stops it). */
  runApiProcess: (env: Record<string, string | undefined>) => Promise<void>;
}

/** One command of the `tollgate` CLI. */
export interface Command {
  name: string;
  /** One line for `tollgate --help`. */
  summary: string;
  /** The exit code: 0 done (or serving), 1 failed, 2 bad arguments (or input the admin API refused). */
  run(args: string[], io: CliIo): Promise<number>;
}
