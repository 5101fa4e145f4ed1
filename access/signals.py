"""Signals the access app sends to the apps above it (which it must not import).

`residents_created` - residents were written in bulk (access.services.onboarding), which sends
no post_save: `residents` are the saved Resident rows. identity indexes their contacts on it,
as it does on each post_save of a resident.
"""

from django.dispatch import Signal

residents_created = Signal()
