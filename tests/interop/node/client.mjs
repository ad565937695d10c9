// Interop fixture: obtain a token with openid-client (client_credentials grant,
// private_key_jwt client authentication) from an arbitrary authorization server.
//
// Usage: node client.mjs CONFIG.json
//
// CONFIG.json:
//   {
//     "issuer": "http://127.0.0.1:PORT",
//     "client_id": "...",
//     "private_jwk": {... private JWK, with "kid" and "alg" ...},
//     "scope": "optional scope string",
//     "resource": "optional resource indicator",
//     "discovery": "auto" | "oidc" | "oauth2"   (optional, default "auto"),
//     "dpop": false,                             (optional: a DPoP-bound token)
//     "resource_url": "optional API URL to GET with the token (DPoP proof included)"
//   }
//
// With "dpop", the output also holds "dpop_jkt" (the DPoP key's RFC 7638 thumbprint) and,
// with "resource_url", "resource" (the API's status and JSON body).
//
// Discovery uses <issuer>/.well-known/openid-configuration ("oidc") or
// <issuer>/.well-known/oauth-authorization-server ("oauth2"); "auto" tries the
// former and falls back to the latter. Plain HTTP is allowed (loopback tests).
//
// Success: the token endpoint response as one JSON line on stdout, exit 0.
// Failure: {"error", "error_description", "status"} as one JSON line on stdout,
// exit 1 (status is the HTTP status or null when there was no HTTP error).

import { readFileSync } from 'node:fs';

import * as client from 'openid-client';
import { calculateJwkThumbprint, exportJWK, importJWK } from 'jose';

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function errorBody(err) {
  // openid-client ResponseBodyError: OAuth error response from the server.
  if (err instanceof client.ResponseBodyError) {
    return {
      error: err.error,
      error_description: err.error_description ?? null,
      status: err.status ?? null,
    };
  }
  // Non-OAuth HTTP failure (e.g. 404 on discovery, non-JSON body).
  const response = err?.cause instanceof Response ? err.cause : undefined;
  return {
    error: err?.code ?? err?.name ?? 'client_error',
    error_description: err?.message ?? String(err),
    status: response?.status ?? null,
  };
}

async function discover(issuer, clientId, clientAuth, mode) {
  const server = new URL(issuer);
  const options = { execute: [client.allowInsecureRequests] };
  if (mode === 'oidc' || mode === 'oauth2') {
    return client.discovery(server, clientId, undefined, clientAuth, { ...options, algorithm: mode });
  }
  try {
    return await client.discovery(server, clientId, undefined, clientAuth, { ...options, algorithm: 'oidc' });
  } catch (err) {
    try {
      return await client.discovery(server, clientId, undefined, clientAuth, { ...options, algorithm: 'oauth2' });
    } catch {
      throw err;
    }
  }
}

async function main() {
  const path = process.argv[2];
  if (!path) throw new Error('usage: node client.mjs CONFIG.json');
  const cfg = JSON.parse(readFileSync(path, 'utf8'));
  for (const field of ['issuer', 'client_id', 'private_jwk']) {
    if (!cfg[field]) throw new Error(`config is missing "${field}"`);
  }

  const jwk = cfg.private_jwk;
  if (!jwk.alg) throw new Error('private_jwk must carry "alg"');
  // jose maps "EdDSA" to an Ed25519 CryptoKey; oauth4webapi would then label
  // the assertion "Ed25519", so keep the JWK's own alg in the JWS header.
  const key = await importJWK(jwk, jwk.alg);
  const clientAuth = client.PrivateKeyJwt(
    { key, kid: jwk.kid },
    {
      [client.modifyAssertion]: (header) => {
        header.alg = jwk.alg;
      },
    },
  );

  const config = await discover(cfg.issuer, cfg.client_id, clientAuth, cfg.discovery ?? 'auto');

  const params = {};
  if (cfg.scope) params.scope = cfg.scope;
  if (cfg.resource) params.resource = cfg.resource;
  let options;
  let jkt;
  if (cfg.dpop) {
    const keyPair = await client.randomDPoPKeyPair('ES256');
    options = { DPoP: client.getDPoPHandle(config, keyPair) };
    jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
  }
  const tokens = await client.clientCredentialsGrant(config, params, options);
  // TokenEndpointResponse carries helper methods; emit only the JSON members.
  const out = JSON.parse(JSON.stringify(tokens));
  if (jkt) out.dpop_jkt = jkt;
  if (cfg.resource_url) {
    const response = await client.fetchProtectedResource(
      config, tokens.access_token, new URL(cfg.resource_url), 'GET', undefined, undefined, options,
    );
    out.resource = { status: response.status, body: await response.json() };
  }
  emit(out);
}

try {
  await main();
  process.exitCode = 0;
} catch (err) {
  emit(errorBody(err));
  process.stderr.write(`client.mjs: ${err?.stack ?? err}\n`);
  if (err?.cause && !(err.cause instanceof Response)) {
    process.stderr.write(`client.mjs: cause: ${err.cause?.stack ?? JSON.stringify(err.cause)}\n`);
  }
  process.exitCode = 1;
}
