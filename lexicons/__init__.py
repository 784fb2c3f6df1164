"""The shipped bilingual lexicons ({pair}.{train,test}.tsv), installed as the data package
``alignkit.shipped_lexicons``; :func:`alignkit.inputs.lexicons.shipped_dir` finds them."""
