#!/usr/bin/env python3
"""Builds the fuzz seed corpora: usage seeds.py VECTORS OUT. One folder per target under OUT, from the shared
reference vectors (tokens, JSON documents, JWKs, PEM keys) and a few hand-written forms and headers.
The store and snapshot seeds are written by the fuzz binary itself (TESSERA_FUZZ_WRITE_SEEDS)."""
import base64
import hashlib
import json
import os
import re
import sys

vectors, out = sys.argv[1], sys.argv[2]
seeds = {name: set() for name in ["jws", "json", "jwk", "pem", "form", "basic", "authorize"]}


def walk(value, found):
    if isinstance(value, dict):
        if "kty" in value or "keys" in value:
            found["jwk"].add(json.dumps(value))
        for item in value.values():
            walk(item, found)
    elif isinstance(value, list):
        for item in value:
            walk(item, found)
    elif isinstance(value, str):
        if "-----BEGIN" in value:
            found["pem"].add(value)
        for token in re.findall(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*", value):
            found["jws"].add(token)
            for part in token.split(".")[:2]:
                try:
                    found["json"].add(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8"))
                except Exception:
                    pass


for root, _, files in os.walk(vectors):
    for name in files:
        if not name.endswith(".json"):
            continue
        with open(os.path.join(root, name), encoding="utf-8") as handle:
            text = handle.read()
        if len(text) <= 16_384:
            seeds["json"].add(text)
        walk(json.loads(text), seeds)

seeds["form"] |= {
    "grant_type=client_credentials&scope=read+write",
    "grant_type=password&username=alice&password=p%40ss+word",
    "grant_type=refresh_token&refresh_token=tsr_abc&scope=read",
    "grant_type=authorization_code&code=tac_x&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_verifier=abc",
    "a=1&a=2", "%zz=1", "=&&=", "name=%E2%9C%93",
}
seeds["basic"] |= {
    "Basic " + base64.b64encode(b"app:tcs_secret").decode(), "Basic " + base64.b64encode(b"a%3Ab:c%25d").decode(),
    "Basic", "Basic ", "basic YXBw", "Bearer abc", "Basic ====", "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode(),
}
seeds["authorize"] |= {
    "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=read&state=s"
    "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
    "response_type=code&client_id=app&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb&prompt=none&state=x",
    "response_type=token&client_id=app", "client_id=app&redirect_uri=com.example.app%3A%2Fcb&response_type=code",
    # OpenID Connect parameters: nonce, max_age, prompt, the claims JSON, hints.
    "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=read&state=s&nonce=n-1&max_age=0"
    "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
    "&prompt=login%20select_account&login_hint=alice&id_token_hint=eyJ.eyJ.sig"
    "&claims=%7B%22id_token%22%3A%7B%22email%22%3A%7B%22essential%22%3Atrue%7D%7D%2C%22userinfo%22%3A%7B%22name%22%3Anull%7D%7D",
    "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&request=eyJ&claims=%7B%22userinfo%22%3A%5B%5D%7D"
    "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
}

for target, items in seeds.items():
    folder = os.path.join(out, target)
    os.makedirs(folder, exist_ok=True)
    for item in items:
        data = item.encode("utf-8")
        with open(os.path.join(folder, hashlib.sha1(data).hexdigest()), "wb") as handle:
            handle.write(data)
    print(f"{target}: {len(items)} seeds")
