"""django-axes' lockout records keep no form data.

For every failed login axes stores the submitted form (`AccessAttempt.post_data`), masking only
the fields named `password` or in AXES_SENSITIVE_PARAMETERS: the two-factor login's
`auth-password` (even the right password typed during a lockout), a backup code or whatever a
future form calls its secret would be kept in clear and shown to security admins. The form adds
nothing to a lockout (username, address, user agent and path have their own columns), so none
of it is stored: an allow-list of nothing cannot miss a field.
"""


def drop_form_data(sender, instance, **kwargs):
    """pre_save of axes' AccessAttempt (both on the first failure and on every later one)."""
    instance.post_data = ""
