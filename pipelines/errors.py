"""The error every route answers with: ``{"error": code, "message": why}`` and its HTTP status
(docs/PROTOCOL.md, "Errors")."""


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
