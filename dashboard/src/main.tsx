/** The dashboard's entry: the session decides the view (sign-in form, tenant view, operator view). */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, currentSession, signIn, signOut, type SessionView } from './api.js';
import { OperatorView } from './operator.js';
import './styles.css';
import { TenantView } from './tenant.js';

function SignIn(props: { onSignedIn: (view: SessionView) => void }) {
  const [credential, setCredential] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [isBusy, setBusy] = useState(false);
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const view = await signIn(credential.trim());
      setCredential('');
      props.onSignedIn(view);
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : 'sign-in failed');
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>tollgate</h1>
      <form onSubmit={(event) => void submit(event)}>
        <label for="credential">API key (tenant) or admin token (operator)</label>
        <input
          id="credential"
          type="password"
          autocomplete="off"
          value={credential}
          onInput={(event) => setCredential(event.currentTarget.value)}
          required
        />
        <button type="submit" disabled={isBusy}>
          Sign in
        </button>
        {error === undefined ? null : (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <p class="muted small">The key is exchanged for a session cookie and not kept by this page.</p>
      </form>
    </main>
  );
}

function App() {
  const [session, setSession] = useState<SessionView | null | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    currentSession().then(setSession, (caught: unknown) => setError(caught instanceof Error ? caught.message : String(caught)));
  }, []);
  if (error !== undefined)
    return (
      <main>
        <p class="error" role="alert">
          {error}
        </p>
        <button type="button" onClick={() => location.reload()}>
          Retry
        </button>
      </main>
    );
  if (session === undefined) return <p class="loading">Loading…</p>;
  if (session === null) return <SignIn onSignedIn={setSession} />;
  const out = (): void => {
    signOut().then(
      () => setSession(null),
      () => setSession(null),
    );
  };
  return (
    <>
      <header class="top">
        <h1>tollgate</h1>
        <p>
          {session.kind === 'tenant' ? 'Tenant' : 'Operator'} <strong data-testid="who">{session.name}</strong>
        </p>
        <button type="button" onClick={out} data-testid="sign-out">
          Sign out
        </button>
      </header>
      <main>{session.kind === 'tenant' ? <TenantView /> : <OperatorView />}</main>
    </>
  );
}

const root = document.getElementById('app');
if (root !== null) {
  root.textContent = '';
  render(<App />, root);
}
