"""Off-policy evaluation: logged data, estimators, assessment metrics, candidate pools."""
