"""The authorization code flow spread over three `tessera serve` on one database, as a browser behind a
load balancer would meet them: /authorize at A, the sign-in form posted to B, the consent form to C (the
session cookie carries only a random id), the code redeemed at B, and redeemed again at C (refused).

argv: A_URL B_URL C_URL CLIENT_ID CLIENT_SECRET REDIRECT_URI USERNAME PASSWORD
Prints one JSON object; exits non-zero on the first failure.
"""
import base64
import hashlib
import html
import json
import re
import secrets
import sys
import urllib.parse

import requests

a, b, c, client_id, secret, redirect_uri, username, password = sys.argv[1:9]
verifier = secrets.token_urlsafe(48)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def form_of(page, base):
    """The first form's action on `base` and its hidden fields."""
    match = re.search(r'<form method="post" action="([^"]*)">(.*?)</form>', page, re.S)
    assert match, page[:400]
    fields = {html.unescape(n): html.unescape(v) for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', match.group(2))}
    path = re.sub(r"^https?://[^/]+", "", html.unescape(match.group(1)))
    return base + path, fields


browser = requests.Session()
query = urllib.parse.urlencode({
    "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": "read",
    "state": "across", "code_challenge": challenge, "code_challenge_method": "S256"})
page = browser.get(a + "/authorize?" + query, timeout=10)
assert page.status_code == 200 and "<h1>Sign in</h1>" in page.text, (page.status_code, page.text[:400])
action, fields = form_of(page.text, b)
page = browser.post(action, data={**fields, "username": username, "password": password}, timeout=10, allow_redirects=False)
assert page.status_code == 200 and "<h1>Allow access?</h1>" in page.text, (page.status_code, page.text[:400])
action, fields = form_of(page.text, c)
answer = browser.post(action, data={**fields, "decision": "allow"}, timeout=10, allow_redirects=False)
assert answer.status_code == 303, (answer.status_code, answer.text[:400])
location = answer.headers["Location"]
parameters = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
assert location.startswith(redirect_uri) and parameters.get("state") == "across" and "code" in parameters, location

exchange = {"grant_type": "authorization_code", "code": parameters["code"], "redirect_uri": redirect_uri, "code_verifier": verifier}
first = requests.post(b + "/token", data=exchange, auth=(client_id, secret), timeout=10)
assert first.status_code == 200 and "access_token" in first.json(), (first.status_code, first.text)
again = requests.post(c + "/token", data=exchange, auth=(client_id, secret), timeout=10)
assert again.status_code == 400 and again.json()["error"] == "invalid_grant", (again.status_code, again.text)
print(json.dumps({"issuer": parameters.get("iss"), "redeemed_at": "B", "replay": again.json()["error"],
                  "refresh_token": "refresh_token" in first.json()}))
