"""`{% bilingual "Password" %}` -> "Пароль · Password": the residents' pages speak Russian and
English at once, both through gettext (identity/locale)."""

from django import template
from django.utils import translation
from django.utils.translation import gettext

register = template.Library()


@register.simple_tag
def bilingual(text: str) -> str:
    with translation.override("ru"):
        russian = gettext(text)
    with translation.override("en"):
        english = gettext(text)
    return russian if russian == english else f"{russian} · {english}"
