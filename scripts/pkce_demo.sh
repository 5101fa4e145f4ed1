#!/usr/bin/env bash
# The PKCE walkthrough of docs/api.md as a script: ./scripts/pkce_demo.sh RESIDENT1_PASSWORD [BASE_URL]
# Prints the token response and GET /api/v1/me made with the access token.
set -euo pipefail
PW="$1"; B="${2:-https://localhost:9443}"
CA=(--cacert "${SMARTHOME_VAR_DIR:-var}/certs/ca.pem")
jar=$(mktemp); trap 'rm -f "$jar"' EXIT
VERIFIER=$(python3 -c "import secrets; print(secrets.token_urlsafe(48))")
CHALLENGE=$(printf '%s' "$VERIFIER" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')
CSRF=$(curl -s "${CA[@]}" -c "$jar" -b "$jar" "$B/accounts/login/" | grep -o 'csrfmiddlewaretoken" value="[^"]*' | cut -d'"' -f3)
curl -s "${CA[@]}" -c "$jar" -b "$jar" -e "$B/accounts/login/" -o /dev/null \
     -d "csrfmiddlewaretoken=$CSRF&username=resident1&password=$PW" "$B/accounts/login/"
AUTHZ="$B/o/authorize/?response_type=code&client_id=mobile-app&redirect_uri=ru.smarthome.app:/oauth2redirect&scope=devices:read%20doors:open&state=xyz&code_challenge=$CHALLENGE&code_challenge_method=S256"
FORM=$(curl -s "${CA[@]}" -c "$jar" -b "$jar" "$AUTHZ" | grep -o '<input type="hidden" name="[^"]*" value="[^"]*"' \
       | sed -E 's/.*name="([^"]*)" value="([^"]*)"/\1=\2/' | paste -sd'&' | sed 's/ /%20/g')
LOCATION=$(curl -s "${CA[@]}" -c "$jar" -b "$jar" -e "$AUTHZ" -o /dev/null -w '%{redirect_url}' -d "$FORM&allow=Authorize" "$B/o/authorize/")
CODE=$(echo "$LOCATION" | sed -E 's/.*code=([^&]*).*/\1/')
TOKEN=$(curl -s "${CA[@]}" -d "grant_type=authorization_code&code=$CODE&client_id=mobile-app&redirect_uri=ru.smarthome.app:/oauth2redirect&code_verifier=$VERIFIER" "$B/o/token/")
echo "$TOKEN"
ACCESS_TOKEN=$(echo "$TOKEN" | python3 -c "import sys, json; print(json.load(sys.stdin)['access_token'])")
curl -s "${CA[@]}" -H "Authorization: Bearer $ACCESS_TOKEN" "$B/api/v1/me"; echo
