"""The node's chat: WebSocket hub per channel, moderation state, the chat page."""
