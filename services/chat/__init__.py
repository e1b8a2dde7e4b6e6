"""Chat domain: roles and permissions, user tokens, message sanitising, auto-moderation, commands.

Plain Python with no web framework, so the node's hub, the evaluation script and the tests share it.
"""
