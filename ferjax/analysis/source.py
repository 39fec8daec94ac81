"""What the data are: simulated or recorded participants, rendered or dataset faces, who was left out.

A reader of the report must know, before any number, whether "participants" are people. The
answer is read from the data, never from a flag someone has to remember:

* participants are *simulated* when the click logs' folder holds the ``provenance.json`` that
  ``ferjax simulate`` writes (its ``study`` entry says "simulated participants");
  otherwise they are recorded (a user's logs, or ``ferjax experiment export``'s);
* faces are *rendered* when the stimuli carry action-unit regions (``stimuli/regions.npz``):
  only ``ferjax synth``'s renderer knows where each action unit is; a dataset of photographs has
  no such ground truth.

For a study of real people the description gives the counts instead: the dataset, the
participants and trials analysed, and how many the exclusion rules
(:mod:`ferjax.people.exclusions`, counted in metrics/human.json) left out, and why.
"""

from __future__ import annotations

ASSUMPTIONS = "docs/study.md"   # what the simulation assumes


def _reasons(block: dict) -> str:
    listed = [f"{k.replace('_', ' ')} {v}" for k, v in sorted((block or {}).get("reasons", {}).items()) if v]
    return f" ({', '.join(listed)})" if listed else ""


def describe(*, logs_provenance: dict | None, au_regions: bool, human: dict, n_images: int,
             dataset: str | None = None) -> dict:
    """The data's description for metrics/compare.json and the report's first screen.

    ``logs_provenance``: the logs folder's provenance.json (None without one); ``au_regions``:
    whether the stimuli carry action-unit regions; ``human``: metrics/human.json (``participants``,
    ``trials`` and the ``exclusions`` block); ``n_images``: the images compared; ``dataset``: the
    face dataset's name, for a study of photographs. Returns ``participants`` ("simulated" or
    "recorded"), ``faces`` ("rendered" or "dataset"), ``real_people``, the counts, ``observers``
    (how the text names the participants) and ``text``, one paragraph.
    """
    study = str((logs_provenance or {}).get("study", ""))
    simulated = study.lower().startswith("simulated")
    ex = human.get("exclusions") or {}
    people, trials = ex.get("participants", {}), ex.get("trials", {})
    n_people = int(human.get("participants", people.get("before", 0) - people.get("excluded", 0)))
    n_trials = int(human.get("trials", trials.get("before", 0) - trials.get("excluded", 0)))
    faces = "rendered" if au_regions else "dataset"
    face_text = (f"{n_images} faces rendered from facial action units (ferjax.faces.render), not photographs"
                 if au_regions else f"{n_images} images" + (f" from {dataset}" if dataset else ""))
    if simulated:
        text = (f"Simulated participants, rendered faces: the {n_people} participants are ferjax's simulated "
                f"observers (ferjax.people.simulation), not people, and the study shows {face_text}. "
                f"What the simulation assumes: {ASSUMPTIONS}. Every statement below about participants is "
                f"about the simulator." if au_regions else
                f"Simulated participants: the {n_people} participants are ferjax's simulated observers, not "
                f"people ({ASSUMPTIONS}); the study shows {face_text}.")
    else:
        text = (f"Data: {face_text}; {n_people} participants analysed"
                + (f" of {people['before']}, {people['excluded']} excluded{_reasons(people)}" if people else "")
                + f"; {n_trials} trials analysed"
                + (f" of {trials['before']}, {trials['excluded']} excluded{_reasons(trials)}" if trials else "")
                + ". Exclusion rules: params.yaml, section human.")
    return {"participants": "simulated" if simulated else "recorded", "faces": faces, "real_people": not simulated,
            "participants_analysed": n_people, "trials_analysed": n_trials, "images": int(n_images),
            "dataset": dataset, "excluded_participants": int(people.get("excluded", 0)),
            "excluded_trials": int(trials.get("excluded", 0)),
            "assumptions": ASSUMPTIONS if simulated else None,
            "observers": "the simulated participants" if simulated else "people", "text": text}
