"""Signs users in through the pages of a running `tessera serve` and remembers their consent for a client, as
a browser would once each, so that every later /authorize with one of the cookies answers at once with a code.

argv: BASE_URL CLIENT_ID REDIRECT_URI SCOPE PASSWORD USERNAME [USERNAME ...]
Prints one JSON object: cookies (a Cookie header per user), authorize (the path and query to repeat, the same
for every user), verifier (its PKCE verifier).
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

base, client_id, redirect_uri, scope, password = sys.argv[1:6]
usernames = sys.argv[6:]
verifier = secrets.token_urlsafe(48)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def form_of(page):
    """The first form's action and its hidden fields."""
    match = re.search(r'<form method="post" action="([^"]*)">(.*?)</form>', page, re.S)
    assert match, page[:400]
    fields = {html.unescape(n): html.unescape(v) for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', match.group(2))}
    return base + re.sub(r"^https?://[^/]+", "", html.unescape(match.group(1))), fields


authorize = "/authorize?" + urllib.parse.urlencode({
    "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
    "code_challenge": challenge, "code_challenge_method": "S256"})


def sign_in(username):
    """The Cookie header of a browser that signed `username` in and remembered its consent."""
    browser = requests.Session()
    page = browser.get(base + authorize, timeout=10)
    assert page.status_code == 200 and "<h1>Sign in</h1>" in page.text, (page.status_code, page.text[:400])
    action, fields = form_of(page.text)
    page = browser.post(action, data={**fields, "username": username, "password": password}, timeout=10, allow_redirects=False)
    assert page.status_code == 200 and "<h1>Allow access?</h1>" in page.text, (page.status_code, page.text[:400])
    action, fields = form_of(page.text)
    answer = browser.post(action, data={**fields, "decision": "allow", "remember": "on"}, timeout=10, allow_redirects=False)
    assert answer.status_code in (302, 303) and "code=" in answer.headers["Location"], (answer.status_code, answer.text[:400])
    # Consent is remembered: the same request now answers with a code at once.
    again = browser.get(base + authorize, timeout=10, allow_redirects=False)
    assert again.status_code in (302, 303) and "code=" in again.headers["Location"], (again.status_code, again.text[:400])
    return "; ".join(f"{c.name}={c.value}" for c in browser.cookies)


print(json.dumps({"cookies": [sign_in(name) for name in usernames], "authorize": authorize, "verifier": verifier}))
