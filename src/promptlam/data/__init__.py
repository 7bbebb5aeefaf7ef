"""Datasets on disk: rollout files, labelled subsets, previews."""
