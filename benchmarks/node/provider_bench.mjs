// Load-benchmark peer: the npm oidc-provider (9.13.3, the version pinned by the interop
// fixtures) as a client_credentials token endpoint, configured like `pkjwt serve` in the
// server benchmark: one client with an inline ES256 JWKS, private_key_jwt, opaque access
// tokens, the default in-memory adapter (which is also its jti replay store).
//
// Usage: node provider_bench.mjs CONFIG.json PORT [--watch-stdin]
//
// CONFIG.json: {"client_id": "...", "jwks": {"keys": [...public JWKs...]}}
//
// oidc-provider is imported from tests/interop/node/node_modules (install it with
// `python tests/interop/nodepeers.py install`); this directory has no packages of its own.
//
// Once listening on 127.0.0.1:PORT, exactly one JSON line goes to stdout:
//   {"issuer": ..., "token_endpoint": ..., "pid": ..., "oidc_provider": "9.13.3", "node": ...}
// Everything else goes to stderr. Rejected token requests are counted, not logged one by one
// (a line per request would cost the provider time under load); the counts by error code are
// written to stderr on exit. Exits on SIGTERM/SIGINT and, with --watch-stdin, on stdin EOF.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';

console.log = console.error;
console.info = console.error;
console.debug = console.error;

const NODE_MODULES = new URL('../../tests/interop/node/node_modules/', import.meta.url);

function fail(message, err) {
  let text = `provider_bench.mjs: ${message}`;
  if (err?.error_description) text += `: ${err.error}: ${err.error_description}`;
  if (err) text += `\n${err.stack || err}`;
  process.stderr.write(`${text}\n`);
  process.exit(2);
}

let Provider;
let providerVersion;
try {
  ({ default: Provider } = await import(new URL('oidc-provider/lib/index.js', NODE_MODULES)));
  providerVersion = JSON.parse(
    readFileSync(new URL('oidc-provider/package.json', NODE_MODULES), 'utf8'),
  ).version;
} catch (err) {
  fail(
    'cannot load oidc-provider from tests/interop/node/node_modules '
      + '(run `python tests/interop/nodepeers.py install`)',
    err,
  );
}

const [cfgPath, portArg] = process.argv.slice(2);
if (!cfgPath || !portArg) fail('usage: node provider_bench.mjs CONFIG.json PORT [--watch-stdin]');
const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
const port = Number(portArg);

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });

const configuration = {
  clients: [
    {
      client_id: cfg.client_id,
      jwks: cfg.jwks,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [{ ...ec, kid: 'as-es256', alg: 'ES256', use: 'sig' }] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
  },
  ttl: { ClientCredentials: 600 },
  cookies: { keys: ['pkjwt-bench-cookie-key'] },
};

const errors = new Map();
function countError(_ctx, err) {
  const key = `${err.error ?? err.name}: ${err.error_detail ?? err.error_description ?? err.message}`;
  errors.set(key, (errors.get(key) ?? 0) + 1);
}

const issuer = `http://127.0.0.1:${port}`;
let provider;
try {
  provider = new Provider(issuer, configuration);
} catch (err) {
  fail('invalid provider configuration', err);
}
provider.on('grant.error', countError);
provider.on('server_error', countError);
try {
  if (!(await provider.Client.find(cfg.client_id))) fail(`client ${cfg.client_id} not registered`);
} catch (err) {
  fail(`invalid client ${cfg.client_id}`, err);
}

const server = createServer(provider.callback());
server.keepAliveTimeout = 60_000;
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', 2048, resolve);
}).catch((err) => fail(`cannot listen on 127.0.0.1:${port}`, err));

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  for (const [key, n] of errors) process.stderr.write(`rejected ${n}x ${key}\n`);
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (process.argv.includes('--watch-stdin')) {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

process.stdout.write(`${JSON.stringify({
  issuer,
  token_endpoint: `${issuer}/token`,
  pid: process.pid,
  oidc_provider: providerVersion,
  node: process.versions.node,
})}\n`);
