"""Transform metadata for CDR"""

from typing import Any

UCS_PLUGIN = "MetadataTransformer"


class MetadataTransformer:
    """Transform metadata for CDR"""

    def __init__(self, ucs):
        self.__ucs = ucs
        self.__ucs.api.cdr.set_metadata_transformer(self.transform)

    def stop(self):
        """Remove callback"""
        self.__ucs.api.cdr.unset_metadata_transformer()

    def transform(self, uniqueid: str, metadata: dict[str, Any]) -> None:
        """Transform call_code list to accountcode str"""
        call_code = metadata.pop("call_code", None)
        if call_code is not None:
            metadata["accountcode"] = "|".join(call_code)
