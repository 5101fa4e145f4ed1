"""Writes of the identity app, one module per topic: `links` (provider identities), `signin`
(a provider login resolved to a resident), `invitations` (invitations and password resets),
`revocation` (sessions and tokens), `directory` (staff from LDAP / Active Directory).

Each function takes keyword arguments only, runs in one transaction and records its audit
event in it.
"""
