"""The error codes Slack answers (``{"ok": false, "error": ...}``), grouped by the block
field a user must fix; the block turns each into a NotificationError naming it."""

TOKEN_ERRORS = {
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "not_allowed_token_type",
    "no_permission",
    "ekm_access_denied",
}
CHANNEL_ERRORS = {"channel_not_found", "not_in_channel", "is_archived", "channel_is_archived"}
MESSAGE_ERRORS = {
    "no_text",
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_too_long",
    "too_many_attachments",
    "invalid_arguments",
    "invalid_json",
    "invalid_payload",
    "json_not_object",
}
WEBHOOK_URL_ERRORS = {
    "invalid_token",
    "no_service",
    "no_service_id",
    "no_team",
    "team_disabled",
    "invalid_team",
}
WEBHOOK_CHANNEL_ERRORS = {
    "channel_not_found",
    "channel_is_archived",
    "action_prohibited",
    "posting_to_general_channel_denied",
}
