/**
 * Workflow interceptors for crash tests, bundled into the workflow code the
 * crash-test worker runs (`bundleWorkflowCode({ workflowInterceptorModules })`):
 * they report named points of workflow code to the worker's `crashPoints` sink,
 * which SIGKILLs the process there (`test/support/meter-worker.ts`). Sink calls
 * run after the workflow code of an activation and before its completion is sent
 * to the server, so a kill there loses the whole workflow task: the signal
 * handler that ran, or the continue-as-new command the workflow issued.
 * Never called on replay (the default `callDuringReplay: false`).
 */
import {
  proxySinks,
  type ContinueAsNewInput,
  type Next,
  type SignalInput,
  type Sinks,
  type WorkflowInterceptors,
} from '@temporalio/workflow';

export interface CrashSinks extends Sinks {
  crashPoints: {
    /** `signal:<name>` inside a signal handler, `continue-as-new` as a run hands over. */
    reached(point: string): void;
  };
}

const { crashPoints } = proxySinks<CrashSinks>();

export const interceptors = (): WorkflowInterceptors => ({
  inbound: [
    {
      async handleSignal(
        input: SignalInput,
        next: Next<NonNullable<WorkflowInterceptors['inbound']>[number], 'handleSignal'>,
      ): Promise<void> {
        crashPoints.reached(`signal:${input.signalName}`);
        return next(input);
      },
    },
  ],
  outbound: [
    {
      async continueAsNew(
        input: ContinueAsNewInput,
        next: Next<NonNullable<WorkflowInterceptors['outbound']>[number], 'continueAsNew'>,
      ): Promise<never> {
        crashPoints.reached('continue-as-new');
        return next(input);
      },
    },
  ],
});
