"""Exports of an audit for other systems (DICOM for PACS)."""
