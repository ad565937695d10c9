"""(a) Cold token fetch against a local server (no delay): a new client per fetch, and a
reused client (``fetch_token()`` again)."""

from __future__ import annotations

from typing import Any

from ..common import Candidate, format_table, measure, print_verified
from ..tokenserver import TokenServer
from .clients import CLIENT_ID, KID, Keys, Params, al_client, al_fetch, pk_client


def bench_cold(keys: Keys, p: Params) -> dict[str, Any]:
    print("-- (a) cold token fetch, local server (no delay), RSA-4096 RS512")
    with TokenServer(expires_in=3600, token_delay=0.0) as server:
        url = server.token_url
        reused_pk = pk_client(keys, url)
        reused_al = al_client(keys, url)

        def pk_new() -> object:
            with pk_client(keys, url) as c:
                return c.fetch_token()

        def al_new() -> object:
            with al_client(keys, url) as c:
                return al_fetch(c, url)

        cands = [
            Candidate(
                "pkjwt-new-client",
                pk_new,
                p.cold_fast,
                2,
                "TokenClient(token_url, client_id, key=Key, profile='nhs').fetch_token(), "
                "then close",
            ),
            Candidate(
                "authlib-new-client",
                al_new,
                p.cold_slow,
                1,
                "OAuth2Client(id, PEM text, PrivateKeyJWT(url, alg='RS512')).fetch_token(...), "
                "then close",
            ),
            Candidate(
                "pkjwt-reused-client",
                reused_pk.fetch_token,
                p.cold_fast,
                2,
                "the same TokenClient, fetch_token() again (keep-alive connection)",
            ),
            Candidate(
                "authlib-reused-client",
                lambda: al_fetch(reused_al, url),
                p.cold_slow,
                1,
                "the same OAuth2Client, fetch_token(url, grant_type=...) again",
            ),
        ]
        verification: dict[str, str] = {}
        for cand in cands:
            server.reset()
            cand.fn()
            st = server.stats()
            assertion = st["last_assertion"] or {}
            hdr, clm = assertion.get("header", {}), assertion.get("claims", {})
            problems = []
            if st["token_requests"] != 1:
                problems.append(f"{st['token_requests']} token requests")
            if hdr.get("alg") != "RS512":
                problems.append(f"alg={hdr.get('alg')}")
            if hdr.get("kid") != KID:
                problems.append(f"kid={hdr.get('kid')}")
            if clm.get("iss") != CLIENT_ID or clm.get("sub") != CLIENT_ID:
                problems.append("iss/sub != client_id")
            if problems:
                raise AssertionError(f"{cand.name}: {', '.join(problems)}")
            verification[cand.name] = (
                f"ok: alg={hdr.get('alg')} kid={hdr.get('kid')} typ={hdr.get('typ')} "
                f"aud={'token URL' if clm.get('aud') == url else clm.get('aud')} "
                f"lifetime={clm.get('exp', 0) - clm.get('iat', clm.get('exp', 0) - 300)} s"
            )
        print_verified(verification)
        stats = measure(cands, p.cold_rounds)
        reused_pk.close()
        reused_al.close()
    print(format_table(stats, "pkjwt-new-client", title="per fetch (ms)"))
    new_ratio = stats["authlib-new-client"].median_ns / stats["pkjwt-new-client"].median_ns
    reused_ratio = stats["authlib-reused-client"].median_ns / stats["pkjwt-reused-client"].median_ns
    print(
        f"   authlib / pkjwt: {new_ratio:.1f}x with a new client, {reused_ratio:.1f}x with a "
        "reused client"
    )
    print()
    return {
        "authlib_over_pkjwt_new_client": new_ratio,
        "authlib_over_pkjwt_reused_client": reused_ratio,
        "verification": verification,
        "candidates": [st.as_dict(stats["pkjwt-new-client"]) for st in stats.values()],
    }
