"""Distribution: the same image arrives everywhere as itself, or not at all (T4 promise 4).

Save/load moves an image built for that step to a daemon that does not hold it: a peer target
on another endpoint, or, with none, this daemon after the image was removed from it (the
record says which). Push/pull needs a second daemon on the same registry (a pull back into the
pusher would find every layer still there): without one it is unsupported. These are the
daemon's doing, not its OCI runtime's: targets of one daemon, build options and
registry.pull_by share one observation (the record says which target made it). The tamper
checks have a peer push fresh images this target has never held, change the registry's
storage on disk (a layer blob's bytes; a layer rewritten with its config and manifest and the
tag pointed at them; a manifest replaced by the other image's), and pull the way the
target's site pulls (targets file registry.pull_by: tag or digest).
"""
import re

import pytest

from cutover.expect import Equals, OneOf

pytestmark = pytest.mark.slow_scenario
DIGEST_ERROR = re.compile(r"verif|digest|checksum", re.I)


def _shared(scenario, obs):
    """Targets of one daemon, build and pull_by share these steps: say so when it was another's."""
    return "" if obs["by"] == scenario.t.name else " (the daemon's, shared by its targets that pull the same way)"


@pytest.mark.check("img.save-load")
def test_save_load(image_scenario, check):
    sl = image_scenario.save_load()
    check.attach("load said", "\n".join(sl["said"]))
    check.attach("image", f"built {sl['built']}\nsaved {sl['ref']} = {sl['saved']}\n"
                          f"absent from {sl['into']} before the load: {sl['absent_before_load']}"
                          + (" (removed from it after the save)" if sl["same_daemon"] else "")
                          + f"\nloaded {sl['id']} {sl['tags']}")
    check.note(f"saved on {sl['by']}, loaded into {sl['into']}{_shared(image_scenario, sl)}"
               + (" (the same daemon, the image removed from it between save and load: no other daemon)"
                  if sl["same_daemon"] else ""))
    check.expect({"image ID": sl["built"], "tag": Equals(True)},
                 {"image ID": sl["id"], "tag": sl["ref"] in sl["tags"]})


@pytest.mark.check("img.push-pull")
def test_push_pull(image_scenario, check):
    built, pp = image_scenario.built(), image_scenario.push_pull()
    check.attach("pull", f"ref {pp['ref']}\nrepo digests {pp['repo_digests']}\npushed {pp['pushed']}"
                         f"\nheld by {pp['into']} before the pull (removed first): {pp['held_before']}")
    check.note(f"pushed by {pp['by']}, pulled by {pp['into']} as {pp['ref']}{_shared(image_scenario, pp)}")
    # The build's own ID for the tag it pushed (the rebuild, from the cache, is the tag's last).
    check.expect({"image ID": built["again"].id, "digest": pp["expected_digest"]},
                 {"image ID": pp["id"],
                  "digest": pp["expected_digest"] if pp["expected_digest"] in pp["repo_digests"]
                  else ", ".join(pp["repo_digests"]) or "none"})


@pytest.mark.check("img.tamper-layer")
def test_tamper_layer(image_scenario, check):
    t = image_scenario.tamper_layer()
    rw = t["rewrite"]
    check.attach("tamper", f"blob {t['path']}\nserved now as {t['served']} (manifest says {t['layer']})\n"
                           f"pull {t['ref']}: {t['refused'] or 'succeeded, image ' + str(t['id'])}")
    check.attach("rewrite", f"layer, config and manifest rewritten, tag pointed at manifest {rw['manifest']}\n"
                            f"(pushed: manifest {rw['pushed_digest']}, image {rw['pushed_id']}; rewritten image "
                            f"{rw['rewritten_id']}, layer {rw['layer']})\n"
                            f"pull {rw['ref']}: {rw['refused'] or 'succeeded, image ' + str(rw['id'])}")
    if rw["refused"]:
        rewrite = "refused"
    elif rw["id"] == rw["pushed_id"]:
        rewrite = "the image pushed"
    else:
        rewrite = "the rewritten image" if rw["id"] == rw["rewritten_id"] else f"another image ({rw['id']})"
    check.note(f"layer {t['layer'][:19]} flipped in the registry's storage, and another rewritten with its "
               f"config and manifest; pulled by {t['by']} as {t['ref']}{_shared(image_scenario, t)}")
    check.expect({"pull": "refused", "refusal names the digest": True, "image present after": False,
                  "rewritten layer: pull gives": OneOf("refused", "the image pushed")},
                 {"pull": "refused" if t["refused"] else f"succeeded ({t['id']})",
                  "refusal names the digest": bool(t["refused"] and DIGEST_ERROR.search(t["refused"])),
                  "image present after": t["present"], "rewritten layer: pull gives": rewrite})


@pytest.mark.check("img.tamper-manifest")
def test_tamper_manifest(image_scenario, check):
    t = image_scenario.tamper_manifest()
    check.attach("tamper", f"manifest blob {t['path']} replaced by another image's manifest\n"
                           f"served now as {t['served']}, advertised as {t['advertised']}\n"
                           f"pull {t['ref']}: {t['refused'] or 'succeeded, image ' + str(t['id'])}\n"
                           f"the image pushed under the tag is {t['tamper_id']}, the other image {t['other_id']}")
    if t["refused"]:
        got = "refused (digest error)" if DIGEST_ERROR.search(t["refused"]) else f"refused: {t['refused']}"
    elif t["id"] == t["tamper_id"]:
        got = "the image pushed under the tag"
    else:
        got = "the other image" if t["id"] == t["other_id"] else f"another image ({t['id']})"
    check.note(f"pulled by {t['by']} as {t['ref']}{_shared(image_scenario, t)}")
    check.expect({"pull gives": OneOf("refused (digest error)", "the image pushed under the tag")},
                 {"pull gives": got})
