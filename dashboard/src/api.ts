/**
 * The page's only ways to the server: its session (`/dashboard/session`) and the usage and admin GraphQL APIs,
 * authenticated by the HttpOnly session cookie. The CSRF token lives in memory only; the key or token typed at
 * sign-in is sent once and never kept.
 */
export interface SessionView {
  kind: 'tenant' | 'operator';
  name: string;
  csrf: string;
  expiresAt: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrf = '';

async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as {
      error?: { code: string; message: string };
      errors?: { message: string; extensions?: { code?: string } }[];
    };
    if (body.error !== undefined) return new ApiError(response.status, body.error.code, body.error.message);
    const first = body.errors?.[0];
    if (first !== undefined) return new ApiError(response.status, first.extensions?.code ?? 'ERROR', first.message);
  } catch {
    // not JSON: the status says it
  }
  return new ApiError(response.status, `HTTP_${response.status}`, `the server answered ${response.status}`);
}

async function call(path: string, init: RequestInit): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { credentials: 'same-origin', ...init });
  } catch {
    throw new ApiError(0, 'NETWORK', 'the API cannot be reached; retrying');
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

/** The current session, or null when signed out. */
export async function currentSession(): Promise<SessionView | null> {
  try {
    const view = (await (await call('/dashboard/session', { method: 'GET' })).json()) as SessionView;
    csrf = view.csrf;
    return view;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

export async function signIn(credential: string): Promise<SessionView> {
  const response = await call('/dashboard/session', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ credential }),
  });
  const view = (await response.json()) as SessionView;
  csrf = view.csrf;
  return view;
}

export async function signOut(): Promise<void> {
  await call('/dashboard/session', { method: 'DELETE', headers: { 'x-csrf-token': csrf } });
  csrf = '';
}

/** One GraphQL call to the usage or admin API through the session cookie. */
export async function gql<T>(
  endpoint: '/usage/graphql' | '/admin/graphql',
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  const response = await call(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: { message: string; extensions?: { code?: string } }[] };
  const first = body.errors?.[0];
  if (first !== undefined || body.data === undefined) {
    throw new ApiError(response.status, first?.extensions?.code ?? 'ERROR', first?.message ?? 'no data');
  }
  return body.data;
}
