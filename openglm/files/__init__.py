"""Files: uploads and tool outputs, stored as blobs with a row each; the files API serves them."""
