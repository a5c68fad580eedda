/**
 * The Temporal edge for errors (STYLE §4): our failures become
 * ApplicationFailures typed by their code, non-retryable when a retry cannot
 * help. Anything else propagates unchanged and Temporal retries it.
 */
import { ApplicationFailure } from '@temporalio/common';
import { isAppError } from '../../shared/index.js';

/** Runs an activity body, mapping AppErrors to typed ApplicationFailures. */
export async function asActivity<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if (isAppError(error)) {
      throw ApplicationFailure.create({
        type: error.code,
        message: error.message,
        nonRetryable: !error.retryable,
        details: [error.details],
        cause: error,
      });
    }
    throw error;
  }
}
