"""An independent OpenID Connect relying party (Authlib) and a second ID-token validator (PyJWT) against a
running `tessera serve`: discovery checked by Authlib's provider-metadata validator, the authorization code
flow with PKCE and a nonce (sign-in and consent pages posted as a browser would), the ID token validated by
Authlib's CodeIDToken (iss, aud, exp, iat, nonce, at_hash) and again by PyJWT, UserInfo fetched by Authlib,
and a refresh whose new ID token keeps sub and has no nonce.

argv: BASE_URL CLIENT_ID CLIENT_SECRET REDIRECT_URI USERNAME PASSWORD
Prints one JSON object describing what worked; exits non-zero on the first failure.
"""
import base64
import hashlib
import html
import json
import re
import secrets
import sys
import warnings

warnings.simplefilter("ignore")

import jwt as pyjwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey
from authlib.jose import jwt as authlib_jwt
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata

base, client_id, secret, redirect_uri, username, password = sys.argv[1:7]
result = {}

# Discovery §4: the document at the well-known address, validated by Authlib (every REQUIRED member, https
# rules relaxed only where Authlib allows http for a loopback issuer) and as RFC 8414 metadata.
metadata = requests.get(base + "/.well-known/openid-configuration", timeout=5).json()
OpenIDProviderMetadata(metadata).validate()
AuthorizationServerMetadata(metadata).validate()
result["metadata_valid"] = True
assert metadata["issuer"] == base, metadata
jwks = requests.get(metadata["jwks_uri"], timeout=5).json()

session = OAuth2Session(
    client_id, secret, scope="openid profile email offline_access", redirect_uri=redirect_uri,
    token_endpoint_auth_method="client_secret_basic", code_challenge_method="S256")
nonce = secrets.token_urlsafe(16)
verifier = secrets.token_urlsafe(48)
url, state = session.create_authorization_url(metadata["authorization_endpoint"], nonce=nonce, code_verifier=verifier)


def form_of(page):
    """The first form's action and fields (hidden and submit buttons are filled in by the caller)."""
    match = re.search(r'<form method="post" action="([^"]*)">(.*?)</form>', page, re.S)
    assert match, page[:400]
    fields = {html.unescape(n): html.unescape(v) for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', match.group(2))}
    return base + html.unescape(match.group(1))[len(re.sub(r"^https?://[^/]+", "", base)):], fields


browser = requests.Session()
page = browser.get(url, timeout=5)
assert page.status_code == 200 and "<h1>Sign in</h1>" in page.text, page.text[:400]
action, fields = form_of(page.text)
page = browser.post(action, data={**fields, "username": username, "password": password, "sign_in": "1"}, timeout=5, allow_redirects=False)
assert "<h1>Allow access?</h1>" in page.text, page.text[:400]
result["consent_words"] = "your email address" in page.text
action, fields = form_of(page.text)
answer = browser.post(action, data={**fields, "decision": "allow"}, timeout=5, allow_redirects=False)
assert answer.status_code == 303, answer.status_code
location = answer.headers["Location"]
assert location.startswith(redirect_uri), location

token = session.fetch_token(metadata["token_endpoint"], authorization_response=location, code_verifier=verifier)
id_token = token["id_token"]

# Authlib's relying-party validation: signature with the published keys, then iss, aud, exp, iat, nonce,
# at_hash (the access token's hash per the header's alg) and auth_time.
keys = JsonWebKey.import_key_set(jwks)
claims = authlib_jwt.decode(
    id_token, keys, claims_cls=CodeIDToken,
    claims_options={"iss": {"essential": True, "value": metadata["issuer"]}, "auth_time": {"essential": True}},
    claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]})
claims.validate(leeway=5)
result["authlib_sub"] = claims["sub"]
result["alg"] = claims.header["alg"]

# A second, independent validator: PyJWT with the key the kid names, and at_hash recomputed by hand.
header = pyjwt.get_unverified_header(id_token)
key = pyjwt.PyJWKSet.from_dict(jwks)[header["kid"]].key
decoded = pyjwt.decode(id_token, key, algorithms=["RS256", "ES256", "PS256"], audience=client_id, issuer=metadata["issuer"],
                       options={"require": ["exp", "iat", "sub", "aud", "iss"]}, leeway=5)
digest = hashlib.sha256(token["access_token"].encode()).digest()
assert decoded["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode(), decoded
assert decoded["nonce"] == nonce and header.get("typ") != "at+jwt", (decoded, header)
result["pyjwt_sub"] = decoded["sub"]

# UserInfo through Authlib's session (Bearer header): the same sub, the claims of profile and email.
info = session.get(metadata["userinfo_endpoint"], timeout=5).json()
assert info["sub"] == claims["sub"], info
result["userinfo"] = info

# Core §12.2: the refreshed ID token keeps sub, aud, auth_time and sid and carries no nonce.
refreshed = session.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
again = pyjwt.decode(refreshed["id_token"], key, algorithms=["RS256"], audience=client_id, issuer=metadata["issuer"], leeway=5)
result["refresh_same"] = all(again[name] == decoded[name] for name in ("sub", "aud", "auth_time", "sid")) and "nonce" not in again
print(json.dumps(result))
