"""Every word the gateway's own pages show, in Dutch (the default) and English.

The login-and-approve page and /oauth/manage are read by clients in Dutch neighbourhood care;
a browser that prefers English (``Accept-Language``) gets English. One catalogue, one place:
a page asks :func:`texts_for` for the language of the request and takes its strings here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["LANGUAGES", "Texts", "choose_language", "texts_for"]

LANGUAGES: Final = ("nl", "en")

_CATALOGUE: Final[dict[str, dict[str, str]]] = {
    "nl": {
        "login_title": "Eigen Dossier: toegang geven?",
        "login_intro": "<strong>{app}</strong> vraagt toegang tot uw dossier. Vink uit wat u "
        "niet wilt geven; u kunt het later weer intrekken.",
        "login_legend": "Wat de app mag",
        "username": "Gebruikersnaam",
        "password": "Wachtwoord",
        "approve": "Inloggen en toestaan",
        "refuse": "Weigeren",
        "external_or": "Of, zonder wachtwoord hier:",
        "external_approve": "Inloggen met {name} en toestaan",
        "login_failed": "Inloggen mislukt. Na vijf mislukte pogingen op rij is het account "
        "een kwartier geblokkeerd.",
        "cannot_sign_in": "Deze app kan niet inloggen",
        "start_again": "Begin opnieuw",
        "other_way": "Log op een andere manier in",
        "login_unsuccessful": "Het inloggen is niet gelukt",
        "manage_title": "Apps met toegang tot uw dossier",
        "manage_intro": "Log in om te zien welke apps u toegang gaf tot uw dossier, en om die "
        "toegang in te trekken.",
        "log_in": "Inloggen",
        "log_in_with": "Inloggen met {name}",
        "manage_failed": "Inloggen mislukt.",
        "manage_again": "Log opnieuw in.",
        "form_expired": "Dit formulier is verlopen; probeer het opnieuw.",
        "unknown_action": "Onbekende actie.",
        "withdrawn": "ingetrokken",
        "withdraw": "{name} intrekken",
        "grant_line": "<strong>{name}</strong>, sinds {date}: {what}.",
        "no_apps": "U hebt geen enkele app toegang gegeven.",
        "manage_note": "Intrekken stopt een app meteen: zijn tokens werken niet meer. Wat u "
        "met zorgverleners deelt, regelt u met de toestemmingen in uw dossier.",
        "log_out": "Uitloggen",
        "scope:openid": "weten wie u bent (uw gebruikersnaam)",
        "scope:fhirUser": "weten welke persoon in het dossier u bent",
        "scope:launch/patient": "met uw dossier werken",
        "scope:offline_access": "toegang houden tot u die intrekt",
        "scope:online_access": "toegang houden zolang u ingelogd bent",
        "verb:read": "lezen",
        "verb:write": "wijzigen",
        "verb:*": "lezen en wijzigen",
        "verb:c": "aanmaken",
        "verb:r": "lezen",
        "verb:u": "wijzigen",
        "verb:d": "verwijderen",
        "verb:s": "zoeken",
        "everything": "alles",
        "and": "en",
        "scope_line": "{what} {verbs}{where} ({level})",
        "where": ", als {condition}",
    },
    "en": {
        "login_title": "Eigen Dossier: allow access?",
        "login_intro": "<strong>{app}</strong> asks for access to your dossier. Untick what "
        "you do not want to give; you can withdraw it later.",
        "login_legend": "What the app may do",
        "username": "Login name",
        "password": "Password",
        "approve": "Log in and allow",
        "refuse": "Refuse",
        "external_or": "Or, without a password here:",
        "external_approve": "Log in with {name} and allow",
        "login_failed": "Login failed. After five failures in a row the account is locked "
        "for fifteen minutes.",
        "cannot_sign_in": "This app cannot sign in",
        "start_again": "Please start again",
        "other_way": "Log in another way",
        "login_unsuccessful": "The login did not succeed",
        "manage_title": "Apps with access to your dossier",
        "manage_intro": "Log in to see which apps you allowed into your dossier, and to "
        "withdraw them.",
        "log_in": "Log in",
        "log_in_with": "Log in with {name}",
        "manage_failed": "Login failed.",
        "manage_again": "Please log in again.",
        "form_expired": "This form has expired; please try again.",
        "unknown_action": "Unknown action.",
        "withdrawn": "withdrawn",
        "withdraw": "Withdraw {name}",
        "grant_line": "<strong>{name}</strong>, since {date}: {what}.",
        "no_apps": "You have not allowed any app.",
        "manage_note": "Withdrawing an app stops it at once: its tokens no longer work. What "
        "you share with care providers is set by your consents in your dossier.",
        "log_out": "Log out",
        "scope:openid": "know who you are (your login name)",
        "scope:fhirUser": "know which person in the dossier you are",
        "scope:launch/patient": "work with your dossier",
        "scope:offline_access": "keep access until you withdraw it",
        "scope:online_access": "keep access while you are logged in",
        "verb:read": "read",
        "verb:write": "change",
        "verb:*": "read and change",
        "verb:c": "create",
        "verb:r": "read",
        "verb:u": "change",
        "verb:d": "delete",
        "verb:s": "search",
        "everything": "everything",
        "and": "and",
        "scope_line": "{verbs} {what}{where} ({level})",
        "where": " where {condition}",
    },
}


@dataclass(frozen=True, slots=True)
class Texts:
    """The strings of one language; ``t(key, **values)`` fills one in (values are already
    escaped by the caller where they go into HTML)."""

    language: str

    def t(self, key: str, **values: str) -> str:
        text = _CATALOGUE[self.language][key]
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in _CATALOGUE[self.language]

    def scope_label(self, scope: str) -> str:
        """A SMART scope in words: ``patient/Observation.rs`` -> read and search Observation."""
        if self.has(f"scope:{scope}"):
            return self.t(f"scope:{scope}")
        level, _, rest = scope.partition("/")
        kind, _, permission = rest.partition(".")
        letters, _, condition = permission.partition("?")
        what = self.t("everything") if kind == "*" else kind
        if self.has(f"verb:{letters}") and letters in ("read", "write", "*"):
            verbs = self.t(f"verb:{letters}")
        else:  # SMART v2: a subset of c, r, u, d, s, in that order
            words = [self.t(f"verb:{c}") for c in letters if c in "cruds"]
            verbs = (
                f"{', '.join(words[:-1])} {self.t('and')} {words[-1]}"
                if len(words) > 1
                else "".join(words)
            )
        where = self.t("where", condition=condition) if condition else ""
        return self.t("scope_line", verbs=verbs or letters, what=what, where=where, level=level)


def choose_language(accept_language: str | None) -> str:
    """The language of :data:`LANGUAGES` the browser prefers most (RFC 9110 12.5.4), Dutch
    when it names none of them."""
    best, best_q = LANGUAGES[0], 0.0
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        q -= position * 1e-6  # earlier wins among equals
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best


def texts_for(accept_language: str | None) -> Texts:
    return Texts(choose_language(accept_language))
