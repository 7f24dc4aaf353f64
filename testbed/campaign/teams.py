"""Which model team a policy belongs to: named in its config, or its client certificate's.

Several teams can take part in one campaign, each reaching its own server with its own identity
(``policy.token_env``: a bearer token; ``policy.tls.cert``/``key``: a client certificate for
mutual TLS). A trial records the team with the policy id and version its server reported at the
handshake, on every episode record and in ``trial.json``, and the report attributes each
transfer-matrix row and leaderboard entry to them.
"""

from __future__ import annotations

from pathlib import Path

from testbed.config import PolicyConfig


def policy_team(policy: PolicyConfig) -> str:
    """``policy.team``, else the common name (CN) of ``policy.tls.cert``, else "".

    Raises:
        ValueError: If the certificate cannot be read or names no CN (naming the key and file).
    """
    if policy.team:
        return policy.team
    if not policy.tls.cert:
        return ""
    return certificate_name(Path(policy.tls.cert))


def certificate_name(path: Path) -> str:
    """The subject common name of a PEM certificate.

    Raises:
        ValueError: Naming ``policy.tls.cert`` and the file, if it is unreadable or has no CN.
    """
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"policy.tls.cert: cannot read the team from {path}: {exc}") from None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ValueError(
            f"policy.tls.cert: {path} has no common name (CN) to name the team; set policy.team"
        )
    return str(names[0].value)


def refused_identity(policy: PolicyConfig, team: str, error: Exception) -> str:
    """Why a server refused a trial's policy client: whose identity, presented how.

    Names the server, the policy, the team and where its credential came from (the token's
    environment variable or the certificate file), never the token itself.
    """
    how = []
    if policy.token_env:
        how.append(f"the bearer token in ${policy.token_env} (policy.token_env)")
    if policy.tls.cert:
        how.append(f"the client certificate {policy.tls.cert} (policy.tls.cert)")
    presented = " and ".join(how) or "no token and no client certificate"
    return (
        f"the server at {policy.address} refused policy {policy.name!r} of team "
        f"{team or '(none named)'}, which presented {presented}: {error}; a team's server "
        "accepts only the credentials its operator issued, so give this policy its own "
        "team's token or certificate for this server"
    )
