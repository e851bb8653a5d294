from typing import Any

UCS_PLUGIN = "LookupTransformer"


class LookupTransformer:
    def __init__(self, ucs):
        self.__ucs = ucs
        self.__ucs.lookups.set_lookup_transformer(self.transform)

    def stop(self):
        """Remove callback"""
        self.__ucs.lookups.unset_lookup_transformer()

    def transform(self, lookup_id: int, number: str, data: dict[str, Any]) -> dict[str, Any]:
        """Prefix caller name if they have multiple companies"""
        if not data:
            return {"name": "Dang!"}
        prefix = "?" if len(data.get("companies", [])) > 1 else ""
        data["name"] = f"{prefix}{data['name']}"
        return data
