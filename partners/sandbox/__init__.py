"""The sandbox partner platform: our partner contract (DESIGN.md), implemented for dev and tests.

Runs as its own process, without Django::

    python -m partners.sandbox --host 127.0.0.1 --port 8443 --control-port 8444 --certs-dir var/certs

Modules: `server` (HTTPS + mTLS listener, control listener), `app` (request pipeline),
`routing` (request/reply types), `oauth` (client credentials, certificate-bound JWTs),
`operations` (the /v1 API), `faces` (JWE decryption), `keyring` (our key material after a
rotation: plate-token key and secrets), `store` (in-memory state and call log),
`faults` (fault injection), `smarthome_link` (the partner calling our service: arrivals and
event webhooks), `control_api` (the control port's API) and `control` (a client for it).
"""
