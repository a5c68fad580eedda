/**
 * The token cap on documents, checked while parsing. graphql-js's own
 * `maxTokens` reports an overrun only as message text; here the lexer the
 * parser reads from counts the tokens and throws our `TokenLimitError`, so the
 * edge tells a flood from a syntax error by type. The count is graphql-js's:
 * every token the parser takes, comments and the end of the document excluded,
 * and the overrun is raised at the same token, so a syntax error earlier in
 * the document still wins.
 */
import { GraphQLError, Lexer, Source, TokenKind, parse, type DocumentNode, type ParseOptions, type Token } from 'graphql';
import { edgeError } from './responses.js';

/** A document with more lexical tokens than allowed; the edge answers 400 `TOKEN_LIMIT_EXCEEDED`. */
export class TokenLimitError extends Error {
  readonly code = 'TOKEN_LIMIT_EXCEEDED';

  constructor(readonly maxTokens: number) {
    super(`the document has more than ${maxTokens} tokens`);
    this.name = 'TokenLimitError';
  }
}

/** A lexer that stops the parse at the first token past the cap. */
class CountingLexer extends Lexer {
  private taken = 0;

  constructor(
    source: Source,
    private readonly maxTokens: number,
  ) {
    super(source);
  }

  override advance(): Token {
    const token = super.advance();
    if (token.kind !== TokenKind.EOF) {
      this.taken += 1;
      if (this.taken > this.maxTokens) throw new TokenLimitError(this.maxTokens);
    }
    return token;
  }
}

/**
 * graphql's `parse` with at most `maxTokens` lexical tokens.
 * @throws TokenLimitError when the document has more
 * @throws GraphQLError for a syntax error (before the cap is reached)
 */
export function parseWithTokenLimit(source: string | Source, options: { maxTokens: number; parseOptions?: ParseOptions }): DocumentNode {
  const body = typeof source === 'string' ? new Source(source) : source;
  // graphql's own cap stays off: it would report the overrun as text only
  return parse(body, {
    ...options.parseOptions,
    maxLexicalTokens: undefined,
    maxTokens: undefined,
    lexer: new CountingLexer(body, options.maxTokens),
  });
}

/**
 * The error parsing `query` stops with at the token cap, or undefined when it
 * does not. A document has no more tokens than characters, so a short one is
 * never lexed. Any other parse failure is undefined too: it is reported when
 * the document is parsed for execution.
 */
export function tokenLimitError(query: string, maxTokens: number): TokenLimitError | undefined {
  if (query.length <= maxTokens) return undefined;
  try {
    parseWithTokenLimit(query, { maxTokens });
    return undefined;
  } catch (error) {
    return error instanceof TokenLimitError ? error : undefined;
  }
}

/**
 * `tokenLimitError` with a memory of the query texts found within the limit: a client resending one long query
 * (over `maxTokens` characters, which `tokenLimitError` must lex) is lexed once, not on every request. The texts kept
 * are the most recent, at most `maxChars` characters in all; a refused text is never kept (it is refused every time).
 */
export class TokenLimitCheck {
  private readonly within = new Set<string>();
  private chars = 0;

  constructor(
    private readonly maxTokens: number,
    private readonly maxChars = 4_000_000,
  ) {}

  /** The refusal of a query over the limit, or undefined. */
  errorOf(query: string): TokenLimitError | undefined {
    if (query.length <= this.maxTokens || this.within.has(query)) return undefined;
    const error = tokenLimitError(query, this.maxTokens);
    if (error === undefined && query.length <= this.maxChars / 8) this.remember(query);
    return error;
  }

  /** Characters of the texts kept. */
  get keptChars(): number {
    return this.chars;
  }

  private remember(query: string): void {
    this.within.add(query);
    this.chars += query.length;
    for (const oldest of this.within) {
      if (this.chars <= this.maxChars) break;
      this.within.delete(oldest);
      this.chars -= oldest.length;
    }
  }
}

/**
 * The parse function of the edge: {@link parseWithTokenLimit} with its failures
 * as 400 edge errors (`TOKEN_LIMIT_EXCEEDED` with `extensions.max`, or
 * `GRAPHQL_PARSE_FAILED` without graphql's "Syntax Error: " prefix).
 */
export function parseAtEdge(source: string | Source, options: { maxTokens: number; parseOptions?: ParseOptions }): DocumentNode {
  try {
    return parseWithTokenLimit(source, options);
  } catch (error) {
    if (error instanceof TokenLimitError)
      throw edgeError('TOKEN_LIMIT_EXCEEDED', error.message, { status: 400, extensions: { max: error.maxTokens } });
    if (error instanceof GraphQLError)
      throw edgeError('GRAPHQL_PARSE_FAILED', error.message.replace(/^Syntax Error: /, ''), { status: 400 });
    throw error;
  }
}
