import six

if __name__ == "__main__":
    print("ok", six.__version__)
