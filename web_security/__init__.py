"""The web security both applications share: the gateway's local page and the city's platform.

A library: it imports neither application; each application imports it and words its refusal
codes in its own language (docs/web.md, "The web-security library").

- `passwords`: argon2id hashing on threads of its own, the password policy.
- `sessions`: server-side sessions, the `SessionStore` interface, `MemorySessions`.
- `throttle`: the login lockout per username.
- `login`: logging in and out under the lockout, the session cookie.
- `roles`: roles as FastAPI dependencies over an application's roles; CSRF.
- `routes`: who may call each route of an app, for its route-table test.
- `headers`: security headers with a strict Content-Security-Policy.
- `masking`: ID numbers and phones as people see them.
- `csvstream`: CSV downloads a page at a time, formula cells neutralised, their end reported.
- `words`: what the codes above say to people, in Chinese and English; a request's language.
- `id_numbers`: the ID number's check character (GB 11643-1999).
- `purpose`: the purpose of a police action, as both audits keep it.
"""
