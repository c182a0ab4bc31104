"""Before release: model artifacts (manifest, unsafe formats), model inputs, predictors, the backdoor probe
and the release gate's verdict. Pure computation on files, arrays and Arrow tables: no database, no HTTP."""
