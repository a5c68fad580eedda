/**
 * `useTollgate`'s `onExecute` and `onSubscribe`: each operation through the
 * gate (`operation-gate.ts`). Answered operations run nothing; admitted ones
 * run and are settled on what came back, a single result at once, a stream
 * (`@defer`/`@stream`, a subscription) as `streamed-results.ts` says.
 */
import type { ExecutionArgs, ExecutionResult } from 'graphql';
import { createGraphQLError, type YogaInitialContext } from 'graphql-yoga';
import { refusal, type EdgeResponse } from '../decision-response.js';
import type { Identity } from '../identity/identify.js';
import type { AdmittedOperation, GateOutcome, OperationGate } from '../operation-gate.js';
import type { Plan } from '../plans.js';
import { isStream, meterIncremental, meterSubscription } from './streamed-results.js';

/** What the hooks read of a request `useTollgate` identified. */
export interface GatedRequest {
  identity: Identity;
  plan: Plan;
  idempotencyKey: string | null;
  isNotifyRequested: boolean;
  /** Each operation's position in a batch (undefined for a single operation). */
  batchIndex: WeakMap<object, number> | undefined;
  nextIndex: number;
  /** Headers added to the request's response. */
  headers: Record<string, string>;
}

/** What the hooks need of `useTollgate`'s runtime. */
export interface GateRuntime {
  gate: OperationGate;
  requests: WeakMap<Request, GatedRequest>;
  /** Counts a refusal and adds the answer's headers to its request's response; the result to send. */
  send(response: EdgeResponse, state?: GatedRequest): ExecutionResult;
}

type Result = ExecutionResult | AsyncIterable<ExecutionResult>;
type SetResult = (result: ExecutionResult | AsyncIterableIterator<ExecutionResult>) => void;

interface Opened {
  operation: AdmittedOperation;
  state: GatedRequest;
  /** Decides one more event of a subscription (no Idempotency-Key: each event is a usage event of its own). */
  reopen: () => Promise<GateOutcome>;
  /** Aborted when the client goes away. */
  signal: AbortSignal | undefined;
}

/** Opens one operation through the gate; undefined when it was answered (its answer is then the result). */
async function openOperation(
  runtime: GateRuntime,
  untypedArgs: unknown,
  stop: (result: ExecutionResult) => void,
): Promise<Opened | undefined> {
  const args = untypedArgs as ExecutionArgs;
  const context = args.contextValue as YogaInitialContext;
  const state = runtime.requests.get(context.request);
  if (state === undefined) {
    stop(runtime.send(refusal({ code: 'UNIDENTIFIED', message: 'the request was not identified', status: 401 })));
    return undefined;
  }
  const caller = {
    identity: state.identity,
    plan: state.plan,
    idempotencyKey: state.idempotencyKey,
    isNotifyRequested: state.isNotifyRequested,
    batchIndex: () => state.batchIndex?.get(context.params) ?? state.nextIndex++,
  };
  const query = context.params.query;
  const outcome = await runtime.gate.open({ args, caller, query });
  if (outcome.kind === 'answered') {
    stop(runtime.send(outcome.response, state));
    return undefined;
  }
  Object.assign(state.headers, outcome.headers);
  const reopen = (): Promise<GateOutcome> =>
    runtime.gate.open({ args, caller: { ...caller, idempotencyKey: null, batchIndex: () => 0 }, query });
  return { operation: outcome.operation, state, reopen, signal: context.request.signal };
}

/** `onExecute`: answers the operation, or lets it run and then settles and reports (a stream at its end). */
export async function executeOperation(
  runtime: GateRuntime,
  payload: { args: unknown; setResultAndStopExecution: (result: ExecutionResult) => void },
): Promise<{ onExecuteDone: (done: { result: Result; setResult: SetResult }) => Promise<void> } | undefined> {
  const opened = await openOperation(runtime, payload.args, payload.setResultAndStopExecution);
  if (opened === undefined) return undefined;
  return {
    onExecuteDone: async ({ result, setResult }) => {
      if (isStream(result)) {
        setResult(meterIncremental({ gate: runtime.gate, operation: opened.operation, stream: result, signal: opened.signal }));
        return;
      }
      const done = await runtime.gate.finish(opened.operation, result);
      Object.assign(opened.state.headers, done.headers);
      setResult(done.result);
    },
  };
}

/** `onSubscribe`: subscribing decides the first event; every event is charged (`streamed-results.ts`). */
export async function subscribeOperation(
  runtime: GateRuntime,
  payload: { args: unknown; setResultAndStopExecution: (result: ExecutionResult) => void },
): Promise<{ onSubscribeResult: (done: { result: Result; setResult: SetResult }) => void } | undefined> {
  if ((payload.args as ExecutionArgs).schema.getSubscriptionType() == null) {
    // graphql-js does not validate this; refused as the validation error it is, before pricing
    const error = createGraphQLError('the schema has no subscription type', {
      extensions: { code: 'GRAPHQL_VALIDATION_FAILED', http: { status: 400, spec: false } },
    });
    payload.setResultAndStopExecution({ errors: [error] });
    return undefined;
  }
  const opened = await openOperation(runtime, payload.args, payload.setResultAndStopExecution);
  if (opened === undefined) return undefined;
  return {
    onSubscribeResult: ({ result, setResult }) => {
      // a single result (an error at subscribe) is metered as the subscription's one event
      const stream = isStream(result) ? result : [result];
      setResult(
        meterSubscription({
          gate: runtime.gate,
          first: opened.operation,
          reopen: opened.reopen,
          send: (response) => runtime.send(response),
          stream,
          signal: opened.signal,
        }),
      );
    },
  };
}
