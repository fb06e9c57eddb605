"""What every study kind shares: config sections (:mod:`.config`), task selection and the formatted examples a
tasks stage writes (:mod:`.tasks`), training jobs and their checkpoint records (:mod:`.training`), the run view with
trained models (:mod:`.view`)."""
