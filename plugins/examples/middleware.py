"""Middleware plugin example"""


from error import InvalidDataInput, PermissionDenied

UCS_PLUGIN = "Middleware"


class Middleware:
    """Middleware plugin example"""

    def __init__(self, ucs):
        self.ucs = ucs
        self.ucs.api.addMiddleware("config.users.get", self.get_user)
        self.ucs.api.addMiddleware("config.users.edit", self.edit_user)
        self.ucs.api.addMiddleware("config.users.delete", self.delete_user)

    def stop(self):
        """Cleanup on UCS shutdown"""
        self.ucs.api.removeMiddleware("config.users.get", self.get_user)
        self.ucs.api.removeMiddleware("config.users.edit", self.edit_user)
        self.ucs.api.removeMiddleware("config.users.delete", self.delete_user)

    def get_user(self, handler, *args):
        """Just log middleware usage"""
        self.ucs.log.dev("Middleware get_user args: %s", args)
        result = handler(*args)
        self.ucs.log.dev("Middleware get_user result: %s", result)
        return result

    def edit_user(self, handler, user, data):
        """Keep username and password"""
        if data["id"] == 1:
            if "username" in data and data["username"] != "admin":
                raise InvalidDataInput({"username": "Admin username can't be changed"})

            if "password" in data and data["password"] and len(data["password"]) < 10:
                raise InvalidDataInput({"password": "Admin password is too short"})

        return handler(user, data)

    def delete_user(self, *args):
        """Disable user deletion"""
        raise PermissionDenied("This UCS forbids user removal")
