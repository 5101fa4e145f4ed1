"""Use a seeded demo the way people do, then print every secret that was typed or handed out.

Run as `python -m tests.core.demo_logins` with the demo's database in DATABASE_URL and, on stdin,
what `seed_demo` printed as JSON: {"staff": {username: {"password", "totp_secret",
"backup_codes"}}, "resident": {"username", "password"}}. Through the real URL map (Django's test
client, one client per person):

- `manager` signs in to the admin with password + TOTP;
- `security` signs in with password + a backup code, then generates a new set of backup codes;
- `compliance` mistypes the password until locked out, then types the right one (refused);
- `resident1` fails one login at /accounts/login/, signs in, authorises the mobile app
  (Authorization Code + PKCE), redeems the code, calls the API and refreshes the token.

Prints JSON {"secrets": [...], "session_keys": [...]}: every password typed (right or wrong),
every session key a cookie carried, the new backup codes, the authorisation code, access and
refresh tokens. Exits non-zero if any step did not answer as it should.
"""

import base64
import hashlib
import json
import re
import secrets
import sys
from urllib.parse import parse_qs, urlparse

import django

CLIENT_ID = "mobile-app"
REDIRECT_URI = "ru.smarthome.app:/oauth2redirect"


def expect(response, status: int, step: str):
    if response.status_code != status:
        raise SystemExit(f"{step}: HTTP {response.status_code}, expected {status}")
    return response


def totp_now(secret_b32: str) -> str:
    from django_otp.oath import TOTP

    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    totp = TOTP(key, 30, 0, 6, 0)
    return f"{totp.token():06d}"


def login_form(client, step: str, data: dict):
    payload = {"login_view-current_step": step, **{f"{step}-{name}": value for name, value in data.items()}}
    return client.post("/account/login/?next=/admin/", payload)


def session_key(client) -> str:
    return client.cookies["sessionid"].value


def main() -> None:
    django.setup()
    from django.test import Client

    demo = json.load(sys.stdin)
    staff, resident = demo["staff"], demo["resident"]
    found: list[str] = []
    sessions: list[str] = []

    manager = Client()
    expect(login_form(manager, "auth", {"username": "manager", "password": staff["manager"]["password"]}), 200,
           "manager: password")
    expect(login_form(manager, "token", {"otp_token": totp_now(staff["manager"]["totp_secret"])}), 302,
           "manager: TOTP")
    expect(manager.get("/admin/"), 200, "manager: admin")
    sessions.append(session_key(manager))

    security = Client()
    expect(login_form(security, "auth", {"username": "security", "password": staff["security"]["password"]}), 200,
           "security: password")
    security.post("/account/login/?next=/admin/", {"login_view-current_step": "token", "wizard_goto_step": "backup"})
    expect(login_form(security, "backup", {"otp_token": staff["security"]["backup_codes"][0]}), 302,
           "security: backup code")
    expect(security.get("/admin/"), 200, "security: admin")
    page = expect(security.post("/account/two_factor/backup/tokens/", follow=True), 200, "security: new backup codes")
    new_codes = re.findall(r"<li[^>]*>\s*(?:<code>)?([a-z2-7]{8})(?:</code>)?\s*</li>", page.content.decode())
    if len(new_codes) != 10:
        raise SystemExit(f"security: expected 10 new backup codes on the page, found {len(new_codes)}")
    found += new_codes
    sessions.append(session_key(security))

    compliance = Client()
    for attempt in range(5):
        wrong = f"{staff['compliance']['password']}-{attempt}"
        found.append(wrong)
        login_form(compliance, "auth", {"username": "compliance", "password": wrong})
    expect(login_form(compliance, "auth", {"username": "compliance", "password": staff["compliance"]["password"]}),
           429, "compliance: locked out")

    app = Client()
    wrong = resident["password"] + "!"
    found.append(wrong)
    expect(app.post("/accounts/login/", {"username": resident["username"], "password": wrong}), 200,
           "resident: wrong password")
    expect(app.post("/accounts/login/", {"username": resident["username"], "password": resident["password"],
                                         "next": "/healthz"}), 302, "resident: login")
    sessions.append(session_key(app))
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
              "scope": "devices:read", "state": "st-1", "code_challenge": challenge, "code_challenge_method": "S256"}
    consent = expect(app.get("/o/authorize/", params), 200, "resident: consent page")
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.content.decode()))
    redirect = expect(app.post("/o/authorize/", {**form, "allow": "Authorize"}), 302, "resident: authorise")
    code = parse_qs(urlparse(redirect["Location"]).query)["code"][0]
    found.append(code)
    tokens = expect(app.post("/o/token/", {"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID,
                                           "redirect_uri": REDIRECT_URI, "code_verifier": verifier}), 200,
                    "resident: token").json()
    expect(Client().get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}), 200,
           "resident: API call")
    refreshed = expect(Client().post("/o/token/", {"grant_type": "refresh_token", "client_id": CLIENT_ID,
                                                   "refresh_token": tokens["refresh_token"]}), 200,
                       "resident: refresh").json()
    found += [tokens["access_token"], tokens["refresh_token"], refreshed["access_token"], refreshed["refresh_token"]]

    print(json.dumps({"secrets": found + sessions, "session_keys": sessions}))


if __name__ == "__main__":
    main()
