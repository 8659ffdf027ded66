"""Independent JOSE peers (joserfc, PyJWT) for Tessera's interop tests.

Reads one JSON request on stdin, writes one JSON answer on stdout:
  {"op": "sign", "library": "joserfc"|"pyjwt", "jwk": {...private...}, "header": {...}, "claims": {...}}
      -> {"token": "..."}
  {"op": "verify", "library": ..., "jwk": {...public...}, "token": "...", "alg": "ES256"}
      -> {"ok": true, "claims": {...}} or {"ok": false, "error": "..."}
These libraries are lenient about typ, duplicates and padding: peers for valid tokens, not oracles for hostile ones.
"""
import json
import sys
import warnings

warnings.simplefilter("ignore")


def joserfc_sign(request):
    from joserfc import jwk, jwt
    key = jwk.import_key(request["jwk"])
    return jwt.encode(request["header"], request["claims"], key, algorithms=[request["header"]["alg"]])


def joserfc_verify(request):
    from joserfc import jwk, jwt
    key = jwk.import_key(request["jwk"])
    token = jwt.decode(request["token"], key, algorithms=[request["alg"]])
    return token.claims


def pyjwt_sign(request):
    import jwt
    key = jwt.PyJWK(request["jwk"], algorithm=request["header"]["alg"]).key
    header = dict(request["header"])
    alg = header.pop("alg")
    return jwt.encode(request["claims"], key, algorithm=alg, headers=header)


def pyjwt_verify(request):
    import jwt
    key = jwt.PyJWK(request["jwk"], algorithm=request["alg"]).key
    return jwt.decode(request["token"], key, algorithms=[request["alg"]],
                      options={"verify_aud": False, "verify_exp": False, "verify_iat": False, "verify_nbf": False})


def main():
    request = json.load(sys.stdin)
    library = request["library"]
    try:
        if request["op"] == "sign":
            token = (joserfc_sign if library == "joserfc" else pyjwt_sign)(request)
            print(json.dumps({"token": token}))
        else:
            claims = (joserfc_verify if library == "joserfc" else pyjwt_verify)(request)
            print(json.dumps({"ok": True, "claims": claims}))
    except Exception as error:  # the answer, not a crash: the test reports it
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))


main()
