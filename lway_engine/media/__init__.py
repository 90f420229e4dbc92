"""Reading and writing media: still images (`images`) and videos (`video`)."""
