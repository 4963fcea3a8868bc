"""Language tags for container tracks: MP4, Matroska and MPEG-TS store ISO 639-2 codes.

The worker takes BCP 47 tags (``en``, ``pt-BR``), the contract's form; containers want three
letters in the bibliographic form FFmpeg writes (``eng``, ``fre``); MP4 and MPEG-TS drop a
two-letter tag silently. The table is `shared_utils.languages`, shared with sts-service's
engines; a three-letter tag passes through, anything unknown becomes ``und``.
"""

from __future__ import annotations

from shared_utils.languages import UNDETERMINED, iso639_2

__all__ = ["UNDETERMINED", "iso639_2"]
