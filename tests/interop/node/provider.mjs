// Interop fixture: a real oidc-provider authorization server on 127.0.0.1.
//
// Usage: node provider.mjs CONFIG.json [--watch-stdin]
//
// CONFIG.json:
//   {
//     "clients": [
//       {"client_id": "a", "jwks": {"keys": [...public JWKs...]}},
//       {"client_id": "b", "jwks_uri": "http://127.0.0.1:PORT/jwks.json",
//        "token_endpoint_auth_signing_alg": "ES256", "scope": "api:read api:write"}
//     ],
//     "token_format": "opaque" | "jwt",    (default "opaque")
//     "resource": "urn:example:api",        (optional default resource indicator)
//     "dpop": {"require_nonce": true}       (optional: DPoP with server nonces; without it
//                                            oidc-provider's default: DPoP on, no nonces)
//   }
//
// Any other client metadata that oidc-provider recognises may be given per
// client; it overrides the defaults below.
//
// Once listening, exactly one JSON line is written to stdout:
//   {"issuer": ..., "token_endpoint": ..., "jwks_uri": ...}
// Everything else (oidc-provider notices, warnings, per-request error
// details) goes to stderr. The process exits on SIGTERM/SIGINT and, with
// --watch-stdin, when its stdin is closed (i.e. when the parent dies).

import { readFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

// oidc-provider prints NOTICEs with console.info (stdout). stdout is reserved
// for the single ready line, so send all console output to stderr.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const { default: Provider } = await import('oidc-provider');

const CLIENT_AUTH_ALGS = [
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
  'EdDSA', 'Ed25519',
];

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

function fail(message, err) {
  let text = `provider.mjs: ${message}`;
  if (err?.error_description) text += `: ${err.error}: ${err.error_description}`;
  if (err) text += `\n${err.stack || err}`;
  process.stderr.write(`${text}\n`);
  process.exit(2);
}

function isLoopbackUrl(url) {
  const { hostname } = new URL(url);
  return LOOPBACK_HOSTS.has(hostname) || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

// Outgoing requests (client jwks_uri fetches). oidc-provider installs an
// SSRF-protecting undici dispatcher that refuses special-use addresses such
// as 127.0.0.1; drop it for loopback targets and refuse everything else, so
// this fixture can only ever talk to this machine.
async function loopbackOnlyFetch(url, options) {
  if (!isLoopbackUrl(url)) {
    throw new Error(`interop provider refuses to fetch non-loopback URL ${url}`);
  }
  const opts = { ...options };
  delete opts.dispatcher;
  return globalThis.fetch(url, opts);
}

function readConfig(path) {
  if (!path) fail('usage: node provider.mjs CONFIG.json [--watch-stdin]');
  let cfg;
  try {
    cfg = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    fail(`cannot read config ${path}`, err);
  }
  if (!Array.isArray(cfg.clients) || cfg.clients.length === 0) {
    fail('config must have a non-empty "clients" array');
  }
  const tokenFormat = cfg.token_format ?? 'opaque';
  if (!['opaque', 'jwt'].includes(tokenFormat)) {
    fail(`token_format must be "opaque" or "jwt", got ${JSON.stringify(tokenFormat)}`);
  }
  return { ...cfg, token_format: tokenFormat };
}

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
    .export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    .export({ format: 'jwk' });
  return {
    keys: [
      { ...rsa, kid: 'as-rs256', alg: 'RS256', use: 'sig' },
      { ...ec, kid: 'as-es256', alg: 'ES256', use: 'sig' },
    ],
  };
}

// DPoP (RFC 9449) with server nonces: the secret that makes them, and whether every proof
// must carry one (then a first proof without it is answered 400 use_dpop_nonce).
function dpopFeature(dpop) {
  return {
    enabled: true,
    nonceSecret: randomBytes(32),
    requireNonce: () => Boolean(dpop.require_nonce),
  };
}

function buildConfiguration(cfg) {
  const clientScopes = new Set();
  for (const client of cfg.clients) {
    if (typeof client.scope === 'string') {
      for (const s of client.scope.split(' ')) if (s) clientScopes.add(s);
    }
  }
  const scopeUnion = [...clientScopes].join(' ');
  // A JWT access token needs a resource server (it becomes the "aud").
  const defaultResourceId = cfg.resource ?? (cfg.token_format === 'jwt' ? 'urn:pkjwt:interop:api' : undefined);

  const clients = cfg.clients.map((c) => ({
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'private_key_jwt',
    ...c,
  }));

  return {
    clients,
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      token_endpoint_auth_method: 'private_key_jwt',
    },
    jwks: signingKeys(),
    // Static scopes: without a resource indicator oidc-provider keeps only
    // these in a client_credentials request, so every client scope is listed.
    scopes: ['openid', 'offline_access', ...clientScopes],
    features: {
      ...(cfg.dpop ? { dPoP: dpopFeature(cfg.dpop) } : {}),
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf ?? defaultResourceId,
        useGrantedResource: async () => false,
        // Any absolute resource indicator is accepted; it becomes the token
        // audience and carries the union of all client scopes.
        getResourceServerInfo: async (_ctx, resourceIndicator) => ({
          scope: scopeUnion,
          audience: resourceIndicator,
          accessTokenTTL: 600,
          accessTokenFormat: cfg.token_format,
          ...(cfg.token_format === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
        }),
      },
    },
    enabledJWA: {
      clientAuthSigningAlgValues: CLIENT_AUTH_ALGS,
    },
    ttl: {
      AccessToken: 600,
      ClientCredentials: 600,
    },
    fetch: loopbackOnlyFetch,
    cookies: { keys: ['pkjwt-interop-cookie-key'] },
  };
}

function logError(kind) {
  return (ctx, err) => {
    const parts = [`${kind}: ${err.error ?? err.name}: ${err.error_description ?? err.message}`];
    if (err.error_detail) parts.push(`detail=${err.error_detail}`);
    if (err.cause) parts.push(`cause=${err.cause.message ?? err.cause}`);
    const clientId = ctx?.oidc?.client?.clientId ?? ctx?.oidc?.params?.client_id;
    if (clientId) parts.push(`client_id=${clientId}`);
    process.stderr.write(`${parts.join(' ')}\n`);
  };
}

async function main() {
  const cfg = readConfig(process.argv[2]);
  const configuration = buildConfiguration(cfg);

  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  let provider;
  try {
    provider = new Provider(issuer, configuration);
  } catch (err) {
    server.close();
    fail('invalid provider configuration', err);
  }
  provider.on('grant.error', logError('grant.error'));
  provider.on('introspection.error', logError('introspection.error'));
  provider.on('revocation.error', logError('revocation.error'));
  provider.on('server_error', logError('server_error'));

  // Static clients are validated lazily; look each one up now so that a bad
  // client fails at startup instead of at the first token request.
  for (const { client_id: clientId } of cfg.clients) {
    try {
      // eslint-disable-next-line no-await-in-loop
      const client = await provider.Client.find(clientId);
      if (!client) fail(`client ${clientId} was not registered`);
    } catch (err) {
      server.close();
      fail(`invalid client ${clientId}`, err);
    }
  }

  server.on('request', provider.callback());

  const shutdown = () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  if (process.argv.includes('--watch-stdin')) {
    process.stdin.on('end', shutdown);
    process.stdin.on('error', shutdown);
    process.stdin.resume();
  }

  const ready = {
    issuer,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

main().catch((err) => fail('startup failed', err));
