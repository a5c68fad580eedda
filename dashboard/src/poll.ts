/** Data that refreshes itself every few seconds while the tab is visible (and at once when it becomes visible again). */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.js';

export interface Polled<T> {
  data: T | undefined;
  error: string | undefined;
  isLoading: boolean;
  /** When the data was last read. */
  at: Date | undefined;
  reload: () => void;
}

export const POLL_MS = 5_000;

export function usePolled<T>(load: () => Promise<T>, keys: unknown[], intervalMs: number | null = POLL_MS): Polled<T> {
  const [state, setState] = useState<{ data: T | undefined; error: string | undefined; isLoading: boolean; at: Date | undefined }>({
    data: undefined,
    error: undefined,
    isLoading: true,
    at: undefined,
  });
  const generation = useRef(0);
  const run = useCallback(() => {
    const mine = ++generation.current;
    load().then(
      (data) => {
        if (mine === generation.current) setState({ data, error: undefined, isLoading: false, at: new Date() });
      },
      (error: unknown) => {
        if (mine !== generation.current) return;
        const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
        setState((previous) => ({ ...previous, error: message, isLoading: false }));
      },
    );
  }, keys);
  useEffect(() => {
    setState((previous) => ({ ...previous, data: undefined, isLoading: true, error: undefined }));
    run();
    if (intervalMs === null) return undefined;
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') run();
    }, intervalMs);
    const onVisible = (): void => {
      if (document.visibilityState === 'visible') run();
    };
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      clearInterval(timer);
      document.removeEventListener('visibilitychange', onVisible);
      generation.current += 1;
    };
  }, [run, intervalMs]);
  return { ...state, reload: run };
}
