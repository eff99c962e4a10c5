"""Where each Debian package of the real-music corpus keeps its music (:data:`PACKAGES`), the
rules that differ by package (the shortest track kept), the soundtrack held out whole, and the
package list of the scaling campaign's corpus. Read by :mod:`mt2.corpus.real`, which fetches,
copies and splits; docs/design.md section 4 says why these packages and which are reserved."""
from __future__ import annotations

from dataclasses import dataclass

#: Tracks shorter than this (seconds) are skipped (:attr:`Soundtrack.min_seconds`): a piece of music,
#: not a jingle; the nine soundtracks of the first list keep :data:`FIRST_LIST_MIN_SECONDS`.
MIN_SECONDS = 30.0
FIRST_LIST_MIN_SECONDS = 5.0
#: The soundtrack held out whole (split ``holdout``): never trained on; the benchmark's real
#: section measures same-track retrieval on it.
HOLDOUT = "supertux"


@dataclass(frozen=True)
class Soundtrack:
    """Where one package keeps its music: file patterns (fnmatch on the packaged paths; a
    ``.pk3`` or ``.zip`` pattern means zip members matching ``members``), exclusions, how a file
    becomes audio (``copy``, ``raw`` or ``module``), and the shortest track kept (``min_seconds``)."""

    name: str
    package: str
    patterns: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    kind: str = "copy"
    score_package: str | None = None
    min_seconds: float = MIN_SECONDS


_FIRST = FIRST_LIST_MIN_SECONDS
#: The package list with where each keeps its music: the nine music packages of the first list
#: (issue 20), then the music folders of game-data packages (issue 28; each package's contents
#: checked with ``dpkg-deb -c``: neverball-data carries no music and is not listed).
PACKAGES = (
    Soundtrack("ufoai", "ufoai-music", ("*.pk3",), members=("music/*.ogg",), min_seconds=_FIRST),
    Soundtrack("nexuiz", "nexuiz-music", ("*.pk3",), members=("sound/cdtracks/*.ogg",), min_seconds=_FIRST),
    Soundtrack("singularity", "singularity-music", ("*/music/*.ogg",), min_seconds=_FIRST),
    Soundtrack("hyperrogue", "hyperrogue-music", ("*/hyperrogue/music/*.ogg",), exclude=("*/sounds/*",), min_seconds=_FIRST),
    Soundtrack("drascula", "drascula-music", ("*/drascula/*.ogg",), min_seconds=_FIRST),
    Soundtrack("planetblupi", "planetblupi-music-ogg", ("*/music/*.ogg",), score_package="planetblupi-music-midi",
               min_seconds=_FIRST),
    Soundtrack("asc", "asc-music", ("*/music/*.mp3",), min_seconds=_FIRST),
    Soundtrack("xblast", "xblast-tnt-musics", ("*/sounds/xbsng*.raw",), kind="raw", min_seconds=_FIRST),
    Soundtrack("frozen-bubble", "fb-music-high", ("*.xm",), kind="module", min_seconds=_FIRST),
    Soundtrack("0ad", "0ad-data", ("*/mods/public/public.zip",), members=("audio/music/*.ogg",)),
    Soundtrack("supertuxkart", "supertuxkart-data", ("*/supertuxkart/data/music/*.ogg",)),
    Soundtrack("naev", "naev-data", ("*/naev/dat/snd/music/*.ogg",)),
    Soundtrack("megaglest", "megaglest-data", ("*/megaglest/data/core/menu/music/*.ogg",
                                               "*/megaglest/techs/*/factions/*/music/*.ogg")),
    Soundtrack("widelands", "widelands-data", ("*/widelands/data/music/*.ogg",)),
    Soundtrack("supertux", "supertux-data", ("*/supertux2/music/*/*.ogg",)),
    Soundtrack("freedroidrpg", "freedroidrpg-data", ("*/freedroidrpg/data/sound/music/*.ogg",)),
    Soundtrack("hedgewars", "hedgewars-data", ("*/hedgewars/Data/Music/*.ogg",)),
    Soundtrack("redeclipse", "redeclipse-data", ("*/redeclipse/data/sounds/music/*.ogg",)),
    Soundtrack("extremetuxracer", "extremetuxracer-data", ("*/etr/music/*.ogg",)),
    Soundtrack("xmoto", "xmoto-data", ("*/xmoto/Textures/Musics/*.ogg",)),
    Soundtrack("openclonk", "openclonk-data", ("*/openclonk/Music.ocg/*.ogg",)),
    Soundtrack("scorched3d", "scorched3d-data", ("*/scorched3d/data/globalmods/*/data/music/*.ogg",)),
    Soundtrack("lincity-ng", "lincity-ng-data", ("*/lincity-ng/music/*/*.ogg",)),
    Soundtrack("pingus", "pingus-data", ("*/pingus/data/music/*.it", "*/pingus/data/music/*.s3m",
                                         "*/pingus/data/music/*.xm", "*/pingus/data/music/*.mod"), kind="module"),
    Soundtrack("warmux", "warmux-data", ("*/warmux/music/*/*.ogg",)),
    Soundtrack("trackballs", "trackballs-data", ("*/trackballs/music/*.ogg",)),
    Soundtrack("btanks", "btanks-data", ("*/btanks/data/tunes/*.ogg",)),
    Soundtrack("zaz", "zaz-data", ("*/games/zaz/mus*.ogg",)),
    Soundtrack("pathological", "pathological", ("*/pathological/music/*.ogg",)),
    Soundtrack("lordsawar", "lordsawar-data", ("*/lordsawar/music/*.ogg",)),
    Soundtrack("ardentryst", "ardentryst", ("*/ardentryst/Music/*.ogg",)),
    Soundtrack("torcs", "torcs-data", ("*/torcs/data/music/*.ogg",)),
)
#: The 23 packages the scaling campaign's corpus was built from (docs/scaling/README.md): the
#: list as it was before lincity-ng's tracks were matched and the last eight were added.
CAMPAIGN_PACKAGES = tuple(s.package for s in PACKAGES[:24] if s.package != "lincity-ng-data")
