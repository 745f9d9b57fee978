"""The service layer: each state change of an app, and the event that records it, has
one owner here, shared by every front (the control API today; SSH verbs and a dashboard
reach the same code through it). Handlers parse, call one service method, render."""
