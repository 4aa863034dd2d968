"""One ACME v2 order (RFC 8555) with the DNS-01 challenge, through certbot's `acme` library.

    ca = Ca(directory="https://acme.example/directory", account_key=Path("acme-account.key"))
    chain_pem = obtain(ca, csr_pem, dns_updater)

The order is for the names the request asks for (checked before: `names.check_request`). Each
`_acme-challenge` record is published, the challenges answered, the order finalized with the
gateway's own request, and every record published is removed again whatever happened; an
order given up leaves no authorization pending at the CA either.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from acme import challenges, client, errors, messages
from josepy.errors import Error as JoseError
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from .dns import DnsUpdateFailed, DnsUpdater
from .keys import load_or_make_account_key
from .names import CertifyError

log = logging.getLogger("rental-platform.certify")


class AcmeFailed(CertifyError):
    """The CA could not be reached, refused, or could not validate the name."""


@dataclass(frozen=True, slots=True)
class Ca:
    """The ACME CA and the platform's account there."""

    directory: str  # the directory URL
    account_key: Path  # made (0600) on first use; the account is this key's
    trust: Path | None = None  # CA certificates for the directory's HTTPS; None: the system's
    email: str | None = None  # the account's contact, for the CA's expiry notices
    propagation: float = 0.0  # seconds between publishing and answering (DNS secondaries)
    timeout: float = 300.0  # seconds for the whole order


def obtain(ca: Ca, csr_pem: bytes, dns: DnsUpdater) -> bytes:
    """The chain (PEM, the certificate first) the CA issues for `csr_pem`; AcmeFailed or
    DnsUpdateFailed when there is none."""
    jwk = JWKEC(key=load_or_make_account_key(ca.account_key))
    try:
        acme = _client(ca, jwk)
        return _order(acme, jwk, ca, csr_pem, dns)
    except messages.Error as exc:
        raise AcmeFailed(f"the CA refused: {exc}") from None
    except errors.ValidationError as exc:
        raise AcmeFailed("the CA could not validate " + "; ".join(_failures(exc))) from None
    except errors.TimeoutError:
        raise AcmeFailed(f"no certificate within {ca.timeout:g} s") from None
    except requests.RequestException as exc:
        raise AcmeFailed(f"cannot reach the CA at {ca.directory}: {exc}") from None
    except (errors.Error, JoseError) as exc:  # an answer the library cannot use
        raise AcmeFailed(f"the ACME exchange with {ca.directory} failed: {exc}") from None


def _client(ca: Ca, jwk: JWKEC) -> client.ClientV2:
    net = client.ClientNetwork(jwk, alg=ES256, user_agent="rental-platform")
    if ca.trust is not None:
        net.verify_ssl = str(ca.trust)  # type: ignore[assignment]  # requests takes a CA file
    acme = client.ClientV2(client.ClientV2.get_directory(ca.directory, net), net)
    registration = messages.NewRegistration.from_data(email=ca.email,
                                                      terms_of_service_agreed=True)  # fmt: skip
    try:
        acme.new_account(registration)
        log.info("ACME account made at %s (terms: %s)", ca.directory,
                 acme.directory.meta.terms_of_service)  # fmt: skip
    except errors.ConflictError as exc:  # the key's account exists: use it
        net.account = messages.RegistrationResource(uri=exc.location,
                                                    body=messages.Registration())  # fmt: skip
    return acme


def _order(acme: client.ClientV2, jwk: JWKEC, ca: Ca, csr_pem: bytes,
           dns: DnsUpdater) -> bytes:  # fmt: skip
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=ca.timeout)
    order = acme.new_order(csr_pem)
    published: list[tuple[str, str]] = []
    finished = False
    try:
        answers = []
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue  # validated lately for this account: the CA needs no new proof
            challenge, dns01 = _dns01(authorization)
            response, value = dns01.response_and_validation(jwk)
            record = dns01.validation_domain_name(authorization.body.identifier.value)
            try:
                dns.publish(record, value)
            except DnsUpdateFailed as exc:
                if not exc.refused:  # no answer: the update may have landed all the same
                    published.append((record, value))
                raise
            published.append((record, value))
            answers.append((challenge, response))
        if published and ca.propagation > 0:
            time.sleep(ca.propagation)
        for challenge, response in answers:
            acme.answer_challenge(challenge, response)
        chain = acme.poll_and_finalize(order, deadline).fullchain_pem
        finished = True
        return chain.encode("ascii")
    finally:
        left = _remove(dns, published)
        if not finished:
            _abandon(acme, order)
            if left:  # said after the cause, which the caller is already raising
                log.error("%s", left)
        elif left:
            log.warning("the certificate was issued, but %s", left)


def _dns01(authorization: messages.AuthorizationResource,
           ) -> tuple[messages.ChallengeBody, challenges.DNS01]:  # fmt: skip
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, challenges.DNS01):
            return challenge, challenge.chall
    offered = ", ".join(str(challenge.chall.typ) for challenge in authorization.body.challenges)
    raise AcmeFailed(f"the CA offers no dns-01 challenge for"
                     f" {authorization.body.identifier.value} (only {offered})")  # fmt: skip


def _remove(dns: DnsUpdater, published: list[tuple[str, str]]) -> str:
    """Remove every record published; what could not be removed, in words ("" if none)."""
    failed = []
    for record, value in published:
        try:
            dns.remove(record, value)
        except DnsUpdateFailed as exc:
            failed.append(str(exc))
    return ("the TXT record could not be removed: " + "; ".join(failed)) if failed else ""


def _abandon(acme: client.ClientV2, order: messages.OrderResource) -> None:
    """Deactivate the order's authorizations still pending (never answered), so that nothing
    of a given-up order stays open at the CA; best effort, the cause is already known."""
    for authorization in order.authorizations:
        try:
            current, _ = acme.poll(authorization)
            if current.body.status == messages.STATUS_PENDING:
                acme.deactivate_authorization(current)
        except (errors.Error, messages.Error, requests.RequestException) as exc:
            log.warning("could not deactivate %s: %s", authorization.uri, exc)


def _failures(exc: errors.ValidationError) -> list[str]:
    return [f"{authorization.body.identifier.value}: {challenge.error.detail or challenge.error}"
            for authorization in exc.failed_authzrs
            for challenge in authorization.body.challenges
            if challenge.error is not None]  # fmt: skip
