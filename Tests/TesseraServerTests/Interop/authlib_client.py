"""An independent OAuth 2.0 client (Authlib) and JOSE verifier (joserfc) against a running `tessera serve`.

argv: BASE_URL CLIENT_ID CLIENT_SECRET USERNAME PASSWORD
Prints one JSON object describing what worked; exits non-zero on the first failure.
"""
import json
import sys
import warnings

warnings.simplefilter("ignore")

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

base, client_id, secret, username, password = sys.argv[1:6]
metadata = requests.get(base + "/.well-known/oauth-authorization-server", timeout=5).json()
token_url = metadata["token_endpoint"]
keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=5).json())


def claims_of(access_token):
    token = jwt.decode(access_token, keys, algorithms=["ES256", "RS256", "PS256", "EdDSA", "ES384", "ES512"])
    assert token.header["typ"] == "at+jwt", token.header
    claims = token.claims
    assert claims["iss"] == metadata["issuer"], claims
    return claims


result = {}
session = OAuth2Session(client_id, secret, token_endpoint_auth_method="client_secret_basic", scope="read")
first = session.fetch_token(token_url, grant_type="password", username=username, password=password)
result["password_sub"] = claims_of(first["access_token"])["sub"]
refreshed = session.refresh_token(token_url, refresh_token=first["refresh_token"])
result["refreshed_sub"] = claims_of(refreshed["access_token"])["sub"]
result["rotated"] = refreshed["refresh_token"] != first["refresh_token"]

post = OAuth2Session(client_id, secret, token_endpoint_auth_method="client_secret_post")
again = post.refresh_token(token_url, refresh_token=refreshed["refresh_token"])
result["post_refresh_scope"] = again.get("scope")

replay = requests.post(token_url, auth=(client_id, secret), timeout=5,
                       data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
result["replay_status"] = replay.status_code
result["replay_error"] = replay.json().get("error")

session.revoke_token(metadata["revocation_endpoint"], token=again["refresh_token"], token_type_hint="refresh_token")
gone = requests.post(token_url, auth=(client_id, secret), timeout=5,
                     data={"grant_type": "refresh_token", "refresh_token": again["refresh_token"]})
result["after_revoke_error"] = gone.json().get("error")
print(json.dumps(result))
