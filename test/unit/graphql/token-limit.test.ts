import { GraphQLError, Source, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { TokenLimitCheck, TokenLimitError, parseAtEdge, parseWithTokenLimit, tokenLimitError } from '../../../src/graphql/token-limit.js';

/** `{ a a … a }` with `fields` fields: fields + 2 tokens. */
const flat = (fields: number): string => `{ ${'a '.repeat(fields)}}`;

const thrown = (run: () => unknown): unknown => {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
};

describe('the token cap', () => {
  it('admits a document of exactly the cap and refuses one more token, counting as graphql-js does', () => {
    // given documents of 10 and 11 tokens
    expect(parse(flat(8)).tokenCount).toBe(10);
    // then 10 parse under a cap of 10, with the same tree as graphql's parse
    expect(JSON.stringify(parseWithTokenLimit(flat(8), { maxTokens: 10 }))).toBe(JSON.stringify(parse(flat(8))));
    // and 11 stop with our error, carrying the cap
    const error = thrown(() => parseWithTokenLimit(flat(9), { maxTokens: 10 }));
    expect(error).toBeInstanceOf(TokenLimitError);
    expect(error).toMatchObject({ code: 'TOKEN_LIMIT_EXCEEDED', maxTokens: 10, message: 'the document has more than 10 tokens' });
  });

  it('does not count comments, as graphql-js does not', () => {
    const commented = `# one\n# two\n${flat(8)}\n# three`;
    expect(() => parseWithTokenLimit(commented, { maxTokens: 10 })).not.toThrow();
    expect(() => parseWithTokenLimit(new Source(commented), { maxTokens: 9 })).toThrow(TokenLimitError);
  });

  it('lets a syntax error before the cap win over the cap', () => {
    // given a document that breaks at its third token and has 5000 more after it
    const broken = `{ a ) ${'b '.repeat(5_000)}}`;
    const error = thrown(() => parseWithTokenLimit(broken, { maxTokens: 100 }));
    // then it is a syntax error, not a flood
    expect(error).toBeInstanceOf(GraphQLError);
    expect(error).not.toBeInstanceOf(TokenLimitError);
    expect(tokenLimitError(broken, 100)).toBeUndefined();
  });

  it('keeps its own cap when the caller passes graphql options of its own', () => {
    expect(() => parseWithTokenLimit(flat(9), { maxTokens: 10, parseOptions: { maxTokens: 1_000, noLocation: true } })).toThrow(
      TokenLimitError,
    );
    expect(parseWithTokenLimit(flat(8), { maxTokens: 10, parseOptions: { maxTokens: 2, noLocation: true } }).loc).toBeUndefined();
  });

  it('tells a flood from a short or broken document without a parse error escaping', () => {
    expect(tokenLimitError(flat(9), 10)).toMatchObject({ code: 'TOKEN_LIMIT_EXCEEDED', maxTokens: 10 });
    expect(tokenLimitError(flat(8), 10)).toBeUndefined();
    // ten characters cannot hold eleven tokens: never lexed
    expect(tokenLimitError('{ a b c d}', 10)).toBeUndefined();
    expect(tokenLimitError(`{ ${'"'.repeat(20)}`, 10)).toBeUndefined();
  });

  it('answers at the edge with 400 and a stable code for floods and syntax errors alike', () => {
    const flood = thrown(() => parseAtEdge(flat(9), { maxTokens: 10 }));
    expect(flood).toBeInstanceOf(GraphQLError);
    expect(flood).toMatchObject({
      message: 'the document has more than 10 tokens',
      extensions: { code: 'TOKEN_LIMIT_EXCEEDED', max: 10, http: { status: 400, spec: false } },
    });
    const syntax = thrown(() => parseAtEdge('{ a )', { maxTokens: 10 }));
    expect(syntax).toMatchObject({
      message: 'Expected Name, found ")".',
      extensions: { code: 'GRAPHQL_PARSE_FAILED', http: { status: 400, spec: false } },
    });
  });
});

describe('TokenLimitCheck', () => {
  it('refuses an over-limit text every time, accepts a long text within the limit, and keeps at most maxChars of texts', () => {
    // given a limit of 10 tokens and room for 300 characters of remembered texts (one text at most 300 / 8)
    const check = new TokenLimitCheck(10, 300);
    const within = `{ ${'a'.repeat(30)} }`; // 3 tokens, 34 characters: lexed the first time
    const over = flat(20);
    // then the verdicts are tokenLimitError's, the first time and again
    for (let round = 0; round < 2; round += 1) {
      expect(check.errorOf(within)).toBeUndefined();
      expect(check.errorOf(over)).toBeInstanceOf(TokenLimitError);
    }
    expect(check.keptChars).toBe(within.length);
    // when nine more long texts within the limit arrive, the oldest are dropped to stay within 300 characters
    for (const letter of 'bcdefghij') expect(check.errorOf(`{ ${letter.repeat(30)} }`)).toBeUndefined();
    expect(check.keptChars).toBe(8 * within.length);
  });
});
