"""The city's pages and JSON API (SPEC 8), served in a process of its own beside ingest.

| module | holds |
|---|---|
| `process.py` | `WebProcess`: the child process serving uvicorn; `open_state` |
| `settings.py`, `options.py` | `WebSettings`; `run`'s `--web…` options |
| `app.py` | `create_app`: wiring, security headers, errors in one place |
| `deps.py` | `WebState`, the roles as dependencies, the two pools (primary, reads) |
| `api.py`, `api_police.py` | the JSON API: login, logout, gateways; entries, pictures, audit |
| `pages.py`, `pages_fleet.py`, `pages_police.py` | the pages: login, password; fleet; police |
| `filters.py` | the fleet's filters, checked before anything is read |
| `i18n.py`, `clock.py` | every word, Chinese first; every time in its building's zone |

docs/platform.md, "The web", gives the design and why.
"""
