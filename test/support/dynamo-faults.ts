/**
 * Fault injection in front of a real DynamoDB (Local), with AWS SDK v3
 * middleware: DynamoDB Local never throttles and never reports transaction
 * conflicts, so these are thrown here, seeded. Added at the `build` step, i.e.
 * outside the SDK's own retry middleware (`finalizeRequest`), so the faults
 * reach our code rather than being absorbed by SDK retries.
 *
 * - before: the request never reaches DynamoDB (throttling, a conflicting
 *   transaction, a 500);
 * - after: the request reached DynamoDB and was applied, but the caller sees an
 *   error (a lost reply): the retry must recognise the committed write.
 */
import {
  InternalServerError,
  ProvisionedThroughputExceededException,
  ThrottlingException,
  TransactionCanceledException,
  TransactionConflictException,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';

export type DynamoFault = 'throttling' | 'provisioned-throughput' | 'transaction-conflict' | 'transaction-canceled-conflict' | 'internal';

export interface DynamoFaultOptions {
  random: () => number;
  /** Commands faulted, by SDK command name (e.g. `TransactWriteItemsCommand`). */
  commands: readonly string[];
  /** Fraction of calls failed before they reach DynamoDB. */
  beforeRate: number;
  /** Fraction of (TransactWriteItems) calls failed after DynamoDB applied them. */
  afterRate: number;
}

/** Counts of what was injected, by moment and kind. */
export interface DynamoFaultLog {
  before: Record<DynamoFault, number>;
  after: Record<DynamoFault, number>;
  passed: number;
  enabled: boolean;
}

const KINDS: DynamoFault[] = ['throttling', 'provisioned-throughput', 'transaction-conflict', 'transaction-canceled-conflict', 'internal'];

function faultError(kind: DynamoFault, items: number): Error {
  const $metadata = { httpStatusCode: 400 };
  const message = `injected ${kind}`;
  switch (kind) {
    case 'throttling':
      return new ThrottlingException({ message, $metadata });
    case 'provisioned-throughput':
      return new ProvisionedThroughputExceededException({ message, $metadata });
    case 'transaction-conflict':
      return new TransactionConflictException({ message, $metadata });
    case 'transaction-canceled-conflict': {
      // DynamoDB's shape: one reason per item, `TransactionConflict` on the contended ones, `None` elsewhere
      const reasons = Array.from({ length: Math.max(1, items) }, (_, index) => ({ Code: index === 0 ? 'TransactionConflict' : 'None' }));
      return new TransactionCanceledException({
        message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(', ')}]`,
        $metadata,
        CancellationReasons: reasons,
      });
    }
    case 'internal':
      return new InternalServerError({ message, $metadata: { httpStatusCode: 500 } });
  }
}

/** Installs the fault middleware on a client; returns the log (set `enabled = false` to stop injecting). */
export function injectDynamoFaults(client: DynamoDBClient, options: DynamoFaultOptions): DynamoFaultLog {
  const zero = (): Record<DynamoFault, number> => Object.fromEntries(KINDS.map((kind) => [kind, 0])) as Record<DynamoFault, number>;
  const log: DynamoFaultLog = { before: zero(), after: zero(), passed: 0, enabled: true };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName ?? '';
      if (!log.enabled || !options.commands.includes(command)) return next(args);
      const input = args.input as { TransactItems?: unknown[] };
      const items = input.TransactItems?.length ?? 1;
      const roll = options.random();
      const kind = KINDS[Math.floor(options.random() * KINDS.length)] ?? 'throttling';
      if (roll < options.beforeRate) {
        log.before[kind] += 1;
        throw faultError(kind, items);
      }
      const result = await next(args);
      if (command === 'TransactWriteItemsCommand' && roll < options.beforeRate + options.afterRate) {
        log.after[kind] += 1;
        throw faultError(kind, items);
      }
      log.passed += 1;
      return result;
    },
    { step: 'build', name: 'tollgateTestFaults', override: true },
  );
  return log;
}
